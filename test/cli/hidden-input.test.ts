// The keys of a password typed at a terminal in raw mode, read one chunk at a time.
import { describe, expect, it } from 'vitest';
import { typeKeys, type HiddenLine } from '../../src/cli/hidden-input.js';

const typed = (...chunks: string[]): HiddenLine => chunks.reduce<HiddenLine>((line, chunk) => typeKeys(line, chunk), { text: '' });

describe('typeKeys', () => {
  it('ends the line at Enter (CR or LF) or Ctrl-D, and reads nothing after it', () => {
    expect(typed('sec', 'ret\r')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\n')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\u0004')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\r\n', 'more')).toEqual({ text: 'secret', ended: 'enter' });
  });

  it('Backspace (DEL or BS) removes the last character, a whole code point; Ctrl-U the line', () => {
    expect(typed('secretx\u007f\r')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secretx\b\r')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('pässw😀', '\u007f\r')).toEqual({ text: 'pässw', ended: 'enter' });
    expect(typed('\u007f\u007fa\r')).toEqual({ text: 'a', ended: 'enter' });
    expect(typed('wrong\u0015right\r')).toEqual({ text: 'right', ended: 'enter' });
  });

  it('Ctrl-C cancels and forgets what was typed', () => {
    expect(typed('half', 'way\u0003')).toEqual({ text: '', ended: 'cancel' });
  });

  it('drops escape sequences (arrow keys, Delete, F1) and other control characters', () => {
    expect(typed('a\u001b[Db\u001b[3~c\u001bOPd\u0001\t\r')).toEqual({ text: 'abcd', ended: 'enter' });
  });
});
