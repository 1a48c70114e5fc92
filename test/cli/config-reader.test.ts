// The calendar backend looks at config.json on every request (userConfigReader):
// an edit, a removal, a broken file and its repair each show on the very next
// call, with no restart; an unchanged file is not read again.
import { mkdtempSync, rmSync, writeFileSync, unlinkSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, readUserConfig, unknownKeysWarning, userConfigReader } from '../../src/config.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-config-'));
  path = join(dir, 'config.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('userConfigReader', () => {
  it('sees no file, a new file, an edit and a removal on the next call', async () => {
    const read = userConfigReader(path);
    await expect(read()).resolves.toEqual({});
    writeFileSync(path, JSON.stringify({ timeZone: 'Europe/Berlin' }));
    await expect(read()).resolves.toEqual({ timeZone: 'Europe/Berlin' });
    writeFileSync(path, JSON.stringify({ timeZone: 'Europe/Zurich' })); // the same size as before
    await expect(read()).resolves.toEqual({ timeZone: 'Europe/Zurich' });
    writeFileSync(path, JSON.stringify({ tentative: 'free' }));
    await expect(read()).resolves.toEqual({ tentative: 'free' });
    unlinkSync(path);
    await expect(read()).resolves.toEqual({});
  });

  it('reports a broken file on every call until it is fixed', async () => {
    const read = userConfigReader(path);
    writeFileSync(path, '{ not json');
    await expect(read()).rejects.toThrow(ConfigError);
    await expect(read()).rejects.toThrow('not valid JSON');
    writeFileSync(path, JSON.stringify({ onCalendarError: 'skip' }));
    await expect(read()).resolves.toEqual({ onCalendarError: 'skip' });
  });

  it('keeps what it read while the file is unchanged, and reads again once it changes', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'UTC' }));
    // Read well after the change (a clock 10 s ahead): its times can be trusted.
    const read = userConfigReader(path, () => Date.now() + 10_000);
    const first = read();
    expect(read()).toBe(first); // the same answer, not a second read
    await expect(first).resolves.toEqual({ timeZone: 'UTC' });
    chmodSync(path, 0o600); // a change of the inode's change time alone
    expect(read()).not.toBe(first);
  });

  it('reads a file changed less than 2 s ago again on every call: a coarse clock could hide the next change', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'UTC' }));
    const read = userConfigReader(path);
    const first = read();
    expect(read()).not.toBe(first);
    await first;
  });

  it('does not keep a read that failed: the next call tries again, though the file did not change', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'UTC' }));
    let reads = 0;
    const flaky = async (p: string) => {
      if (++reads === 1) throw new ConfigError(p, 'the configuration file cannot be read.'); // say, too many open files
      return readUserConfig(p);
    };
    const read = userConfigReader(path, () => Date.now() + 10_000, flaky);
    await expect(read()).rejects.toThrow('cannot be read');
    await expect(read()).resolves.toEqual({ timeZone: 'UTC' });
    await expect(read()).resolves.toEqual({ timeZone: 'UTC' });
    expect(reads).toBe(2);
  });
});

describe('readUserConfig and keys it does not read', () => {
  it('keeps timeZone as the time zone database spells it (Intl takes any capitalisation)', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'europe/berlin' }));
    await expect(readUserConfig(path)).resolves.toEqual({ timeZone: 'Europe/Berlin' });
  });

  it('keeps a typo’d key aside as unknown, reads the rest, and words one line about it', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'UTC', tentatve: 'free' }));
    const config = await readUserConfig(path);
    expect(config).toEqual({ timeZone: 'UTC', unknownKeys: ['tentatve'] });
    expect(unknownKeysWarning(path, config)).toBe(`${path}: the key "tentatve" is not read (the keys are timeZone, workingHours, tentative, onCalendarError).`);
    writeFileSync(path, JSON.stringify({ timezone: 'UTC', working_hours: 'x' }));
    expect(unknownKeysWarning(path, await readUserConfig(path))).toBe(
      `${path}: the keys "timezone", "working_hours" are not read (the keys are timeZone, workingHours, tentative, onCalendarError).`,
    );
    writeFileSync(path, JSON.stringify({ tentative: 'free' }));
    expect(unknownKeysWarning(path, await readUserConfig(path))).toBeUndefined();
  });

  it('a value it cannot use is a ConfigError whose reason leaves the path to the caller', async () => {
    writeFileSync(path, JSON.stringify({ timeZone: 'Mars/X' }));
    const error = await readUserConfig(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ path, reason: '"timeZone" must be an IANA time zone such as Europe/Berlin.' });
  });
});
