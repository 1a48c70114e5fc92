// Others' text shown on a terminal: every character that acts, or that reorders, hides or breaks the line around it,
// is written as a visible escape. Found in review (regress18b): bidi marks, zero-width characters, the BOM, soft
// hyphens and tag characters in a feed's text passed printable() and reached find-slot's warnings raw, and a clipped
// text could end in half a surrogate pair.
import { describe, expect, it } from 'vitest';
import { hasControlCharacters, printable, printableClipped } from '../src/terminal-text.js';

describe('printable', () => {
  it('escapes C0 and C1 controls, DEL, line and paragraph separators, and the bidi overrides and isolates', () => {
    expect(printable('a\nb\rc\td\u001b[2Ke')).toBe('a\\nb\\rc\\td\\e[2Ke');
    expect(printable('\u0000\u007f\u0085\u009b')).toBe('\\u{0000}\\u{007f}\\u{0085}\\u{009b}');
    expect(printable('x\u2028y\u2029z\u202ew\u2066v')).toBe('x\\u{2028}y\\u{2029}z\\u{202e}w\\u{2066}v');
  });

  it('escapes the format characters too: bidi marks, zero-width characters, the BOM, soft hyphen and tags', () => {
    const hidden = ['\u200e', '\u200f', '\u061c', '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad', '\u{e0041}'];
    for (const c of hidden) {
      expect(hasControlCharacters(`a${c}b`), `U+${c.codePointAt(0)!.toString(16)}`).toBe(true);
      expect(printable(`a${c}b`)).toBe(`a\\u{${c.codePointAt(0)!.toString(16).padStart(4, '0')}}b`);
    }
  });

  it('leaves ordinary text alone, accents, scripts and emoji included', () => {
    for (const text of ['Team calendar', 'Café – Zürich', 'Москва', '東京', 'שלום', 'meet 🙂']) {
      expect(hasControlCharacters(text)).toBe(false);
      expect(printable(text)).toBe(text);
    }
  });
});

describe('printableClipped', () => {
  it('cuts by code points, so no surrogate is left alone', () => {
    const clipped = printableClipped(`${'x'.repeat(9)}🙂🙂`, 10);
    expect(clipped).toBe(`${'x'.repeat(9)}🙂…`);
    expect(clipped).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/); // no high surrogate without its low half
  });

  it('keeps text at or under the bound whole, and escapes before it cuts', () => {
    expect(printableClipped('short', 10)).toBe('short');
    expect(printableClipped('\u001b[31mred', 4)).toBe('\\e[3…');
  });
});
