// The keys of a password typed at a terminal in raw mode, read one chunk at a time.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { readHiddenLine, typeKeys, type HiddenLine, type RawInput } from '../../src/cli/hidden-input.js';

const typed = (...chunks: string[]): HiddenLine => chunks.reduce<HiddenLine>((line, chunk) => typeKeys(line, chunk), { text: '' });

describe('typeKeys', () => {
  it('ends the line at Enter (CR or LF) or Ctrl-D, and reads nothing after it', () => {
    expect(typed('sec', 'ret\r')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\n')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\u0004')).toEqual({ text: 'secret', ended: 'enter' });
    expect(typed('secret\r\n', 'more')).toEqual({ text: 'secret', ended: 'enter' });
  });

  it('keeps what follows the Enter in the same chunk as `rest` (a CR and its LF are one Enter); nothing after Ctrl-C', () => {
    expect(typed('a\rb\r')).toEqual({ text: 'a', ended: 'enter', rest: 'b\r' });
    expect(typed('a\r\nb\r\n')).toEqual({ text: 'a', ended: 'enter', rest: 'b\r\n' });
    expect(typed('a\nb')).toEqual({ text: 'a', ended: 'enter', rest: 'b' });
    expect(typed('a\u0003b\r')).toEqual({ text: '', ended: 'cancel' });
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

/** A terminal in a test: records raw mode, what was shown (nothing but prompts), and sends the chunks it is given. */
class FakeTerminal extends EventEmitter implements RawInput {
  isRaw = false;
  flowing = false;
  modes: boolean[] = [];
  setRawMode(raw: boolean) {
    this.isRaw = raw;
    this.modes.push(raw);
    return this;
  }
  setEncoding() {
    return this;
  }
  resume() {
    this.flowing = true;
    return this;
  }
  pause() {
    this.flowing = false;
    return this;
  }
  type(chunk: string) {
    if (!this.flowing) throw new Error('typed while nobody reads');
    this.emit('data', chunk);
  }
}

describe('readHiddenLine: keys typed ahead (found in review s15rest: "pw⏎pw⏎" in one chunk lost the second line)', () => {
  it('one chunk "a\\rb\\r" fills two successive reads: "a", then "b" without waiting for more keys', async () => {
    const terminal = new FakeTerminal();
    const shown: string[] = [];
    const first = readHiddenLine(terminal, () => shown.push('first: '));
    terminal.type('a\rb\r');
    expect(await first).toBe('a');
    expect(terminal.flowing).toBe(false);
    // The second read has its line already: it does not wait for a chunk (none is sent).
    expect(await readHiddenLine(terminal, () => shown.push('again: '))).toBe('b');
    expect(shown).toEqual(['first: ', 'again: ']); // the prompts, and never a key
    expect(terminal.modes).toEqual([true, false, true, false]);
    expect(terminal.isRaw).toBe(false);
    // Nothing is left over for a third read: it waits for keys.
    const third = readHiddenLine(terminal);
    terminal.type('c\r');
    expect(await third).toBe('c');
  });

  it('a partial next line typed ahead is completed by the keys that follow; CRLF counts as one Enter', async () => {
    const terminal = new FakeTerminal();
    const first = readHiddenLine(terminal);
    terminal.type('a\r\nsec');
    expect(await first).toBe('a');
    const second = readHiddenLine(terminal);
    terminal.type('ret\r');
    expect(await second).toBe('secret');
  });

  it('is kept per terminal: another input does not get it', async () => {
    const one = new FakeTerminal();
    const other = new FakeTerminal();
    const first = readHiddenLine(one);
    one.type('a\rb\r');
    expect(await first).toBe('a');
    const elsewhere = readHiddenLine(other);
    other.type('x\r');
    expect(await elsewhere).toBe('x');
    expect(await readHiddenLine(one)).toBe('b');
  });
});
