// Reading a secret typed at a terminal without showing it: the terminal in
// raw mode (no echo, keys one by one) until Enter, with Backspace and Ctrl-U
// for corrections and Ctrl-C to cancel, as `passwd` and `ssh` ask. The keys
// are read by a pure function (`typeKeys`); `readHiddenLine` binds it to a
// TTY stream and always gives the terminal back as it found it. Keys typed
// ahead (the next line, in the same chunk as this one's Enter: pasted, or
// written at once by a script) are kept, unshown, for the next hidden read
// of the same terminal in this process, as `passwd` keeps them.

/**
 * What the keys typed so far amount to: the line, and whether it ended (Enter) or was cancelled (Ctrl-C);
 * `rest`, once it ended by Enter, the keys that came after it in the same chunk (absent when none did).
 */
export interface HiddenLine {
  text: string;
  ended?: 'enter' | 'cancel';
  rest?: string;
}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const CTRL_U = '\u0015';
const BACKSPACE = ['\u007f', '\b'];
/** A terminal's escape sequence (arrow keys, Delete, function keys): CSI or SS3 and its final byte, or ESC and one key. */
const ESCAPE = /^\u001b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?/s;

/**
 * Applies `keys` (a chunk as the terminal sends it) to `line`. Enter (CR or LF)
 * and Ctrl-D end the line; Ctrl-C cancels it; Backspace removes the last
 * character, Ctrl-U all of them; escape sequences and other control
 * characters are dropped. What follows an Enter is not read but kept in
 * `rest` (a CR and the LF after it are one Enter); after Ctrl-C nothing is kept.
 */
export function typeKeys(line: HiddenLine, keys: string): HiddenLine {
  if (line.ended) return line;
  let text = line.text;
  let rest = keys;
  while (rest !== '') {
    if (rest.startsWith('\u001b')) {
      rest = rest.slice(ESCAPE.exec(rest)![0].length);
      continue;
    }
    const key = String.fromCodePoint(rest.codePointAt(0)!);
    rest = rest.slice(key.length);
    if (key === '\r' || key === '\n' || key === CTRL_D) {
      const after = key === '\r' && rest.startsWith('\n') ? rest.slice(1) : rest;
      return after === '' ? { text, ended: 'enter' } : { text, ended: 'enter', rest: after };
    }
    if (key === CTRL_C) return { text: '', ended: 'cancel' };
    if (BACKSPACE.includes(key)) text = [...text].slice(0, -1).join('');
    else if (key === CTRL_U) text = '';
    else if (key >= ' ') text += key;
  }
  return { text };
}

/** The parts of a TTY input stream (process.stdin at a terminal) this needs. */
export interface RawInput {
  readonly isRaw?: boolean;
  setRawMode(raw: boolean): unknown;
  setEncoding(encoding: 'utf8'): unknown;
  on(event: 'data', listener: (chunk: string) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  off(event: 'data', listener: (chunk: string) => void): unknown;
  off(event: 'end', listener: () => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/**
 * Keys read from a terminal after the Enter that ended a hidden line, not yet
 * read as a line: the start of the next hidden read of that terminal. Only in
 * memory, never written anywhere (found in review s15rest: "pw⏎pw⏎" in one
 * chunk lost the confirmation, and `users add` waited at its second prompt).
 */
const typedAhead = new WeakMap<RawInput, string>();

/**
 * One line typed at the terminal `input`, not echoed; undefined when the
 * person pressed Ctrl-C (in raw mode it sends no SIGINT: the caller ends the
 * command). End of input ends the line as typed. `prompt` is shown once echo
 * is off, so that nothing typed after it appears can be echoed. Keys typed
 * ahead at the previous hidden read of `input` come first.
 */
export async function readHiddenLine(input: RawInput, prompt: () => void = () => undefined): Promise<string | undefined> {
  const wasRaw = input.isRaw === true;
  input.setRawMode(true);
  input.setEncoding('utf8');
  prompt();
  const ahead = typedAhead.get(input);
  typedAhead.delete(input);
  let line: HiddenLine = ahead === undefined ? { text: '' } : typeKeys({ text: '' }, ahead);
  const result = (): string | undefined => {
    if (line.rest !== undefined) typedAhead.set(input, line.rest);
    return line.ended === 'cancel' ? undefined : line.text;
  };
  try {
    if (line.ended) return result();
    return await new Promise<string | undefined>((resolve) => {
      const finish = () => {
        input.off('data', onData);
        input.off('end', finish);
        resolve(result());
      };
      const onData = (chunk: string) => {
        line = typeKeys(line, chunk);
        if (line.ended) finish();
      };
      input.on('data', onData);
      input.on('end', finish);
      input.resume();
    });
  } finally {
    input.setRawMode(wasRaw);
    input.pause();
  }
}
