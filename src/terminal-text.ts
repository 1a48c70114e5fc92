// Text that others supply (a client's name, a reported tool name, a calendar's
// name) and that the CLI later prints on a terminal. Control characters in it
// would act rather than show: a newline forges a line, `\r` with an escape
// sequence erases one, a bidirectional override reorders it. The AS refuses
// them where text is registered or reported; the CLI escapes whatever is
// stored (src/cli/shown.ts), for data written before or by other means.

/**
 * Control characters (C0, C1, DEL: `\p{Cc}`), format characters (`\p{Cf}`: the bidirectional overrides, isolates and
 * marks (LRM, RLM, ALM), zero-width space and joiners, the BOM, soft hyphen, tag characters), and the Unicode line and
 * paragraph separators. Found in review (regress18b): the marks, zero-width characters, BOM and tags passed, so a
 * feed's text could still reorder or hide what the CLI printed; `quoted()` in src/agent/mcp-requests.ts already used
 * this set.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/u;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'gu');

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e' };

/** Whether `text` holds a character a terminal would act on, or that reorders or breaks the line around it. */
export function hasControlCharacters(text: string): boolean {
  return UNSAFE.test(text);
}

/**
 * `printable(text)` cut at `max` characters (code points, so that no surrogate is left alone), with an ellipsis when
 * cut: another program's text inside a one-line message. Only its start is read (a code point is at most two UTF-16
 * units), so a text of megabytes (an agent's answer) costs no more than a short one.
 */
export function printableClipped(text: string, max: number): string {
  const safe = [...printable(text.slice(0, 2 * max + 2))];
  return safe.length > max ? `${safe.slice(0, max).join('')}…` : safe.join('');
}

/** `text` with each such character written as a visible escape: `\n`, `\r`, `\t`, `\e`, else `\u{…}`. */
export function printable(text: string): string {
  return text.replace(UNSAFE_ALL, (c) => NAMED[c] ?? `\\u{${c.codePointAt(0)!.toString(16).padStart(4, '0')}}`);
}
