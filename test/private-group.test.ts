// The user-private-group rule that lets a group-writable directory (umask 002: ~/.local made 0775) be trusted, read
// from account files given as text.
import { describe, expect, it } from 'vitest';
import { isPrivateGroupOf } from '../src/private-group.js';

const passwd = ['root:x:0:0:root:/root:/bin/bash', 'alice:x:1000:1000::/home/alice:/bin/bash', 'bob:x:1001:1001::/home/bob:/bin/bash', 'carol:x:1002:100::/home/carol:/bin/sh', ''].join('\n');
const group = ['# groups', 'root:x:0:', 'users:x:100:', 'alice:x:1000:', 'bob:x:1001:alice', 'shared:x:2000:alice,bob', ''].join('\n');

describe('isPrivateGroupOf', () => {
  it('is true for the group named as the user, with no other member', () => {
    expect(isPrivateGroupOf(1000, 1000, { passwd, group })).toBe(true);
    expect(isPrivateGroupOf(0, 0, { passwd, group })).toBe(true);
    expect(isPrivateGroupOf(1000, 1000, { passwd, group: group.replace('alice:x:1000:', 'alice:x:1000:alice') })).toBe(true);
  });

  it('is false for another user’s group, a shared one, one others have as primary group, or one with another member', () => {
    expect(isPrivateGroupOf(1001, 1000, { passwd, group })).toBe(false);
    expect(isPrivateGroupOf(1001, 1001, { passwd, group })).toBe(false);
    expect(isPrivateGroupOf(2000, 1000, { passwd, group })).toBe(false);
    expect(isPrivateGroupOf(100, 1002, { passwd, group })).toBe(false);
    expect(isPrivateGroupOf(1000, 1000, { passwd: `${passwd}mallory:x:4242:1000::/:/bin/sh\n`, group })).toBe(false);
  });

  it('is false when in doubt: a user or group not in the files, NIS entries, no files', () => {
    expect(isPrivateGroupOf(5000, 5000, { passwd, group })).toBe(false);
    expect(isPrivateGroupOf(1000, 1000, { passwd, group: `${group}+:::\n` })).toBe(false);
    expect(isPrivateGroupOf(1000, 1000, { passwd: `${passwd}+::::::\n`, group })).toBe(false);
    expect(isPrivateGroupOf(1000, 1000, undefined)).toBe(false);
  });
});
