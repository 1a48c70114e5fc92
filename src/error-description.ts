// The text of an `error_description` as the OAuth RFCs allow it on the wire:
// printable ASCII without `"` and `\` (RFC 6749 §5.2 and §4.1.2.1, RFC 6750
// §3: %x20-21 / %x23-5B / %x5D-7E). Messages are written for people and may
// quote a calendar's name or use typographic characters; every writer of an
// error_description (JSON bodies, redirects, WWW-Authenticate challenges)
// passes its text through errorDescription, so none of them can break the rule.
// The same writers bound what a message can repeat of a request (clippedMessage):
// a refusal that names the client's value names at most the start of it.

/** Characters with a plain ASCII stand-in, tried before anything is dropped. */
const STAND_INS: ReadonlyArray<readonly [RegExp, string]> = [
  [/(?<=[\p{L}\p{N}])§/gu, ' §'],
  [/§\s*/g, 'section '],
  [/[\u2018\u2019\u201a\u201b\u2032\u00b4]/g, "'"],
  // `"` itself cannot appear, not even escaped: quotation marks become apostrophes.
  [/[\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\u2039\u203a"]/g, "'"],
  [/\\/g, '/'],
  [/[\u2010-\u2015\u2212]/g, '-'],
  [/\u2192/g, '->'],
  [/\u2190/g, '<-'],
  [/\u00d7/g, 'x'],
  [/\u2022/g, '*'],
  [/[\t\n\r\v\f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g, ' '],
];

/** Anything outside %x20-21 / %x23-5B / %x5D-7E, one code point at a time. */
const OUTSIDE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/gu;

/** The most characters a message keeps of a run without white space (a value it repeats, a URL, a client id). */
export const MAX_ECHOED_RUN = 200;
/** The most characters a message keeps in all: the messages written here are a sentence or two, before what they repeat. */
export const MAX_MESSAGE = 1000;

/** A run of more than MAX_ECHOED_RUN characters without white space, matched from its start only (so in linear time). */
const LONG_RUN = new RegExp(`(?<!\\S)\\S{${MAX_ECHOED_RUN + 1},}`, 'g');

/** The first `max` UTF-16 units of `text`, without a high surrogate left alone at the end, and an ellipsis. */
function cut(text: string, max: number): string {
  const head = text.slice(0, max);
  return `${/[\uD800-\uDBFF]$/.test(head) ? head.slice(0, -1) : head}…`;
}

/**
 * `text` with a bound on what it can repeat of a request: each run of more than MAX_ECHOED_RUN characters without
 * white space cut there, and the whole at MAX_MESSAGE characters, each cut marked with `…`. Refusals name the
 * value refused (`The grant type … cannot be registered.`), and what a client sends is bounded only by the body
 * limit; errorDescription (every error_description sent) and the logged reason of a refusal (replyWithError) apply
 * this, not each message's writer. Found in review (regress21c): a 63 KB grant type came back whole in the
 * description and in the log line. Text within the bounds comes back unchanged.
 */
export function clippedMessage(text: string): string {
  if (text.length <= MAX_ECHOED_RUN) return text;
  const runs = text.replace(LONG_RUN, (run) => cut(run, MAX_ECHOED_RUN));
  return runs.length > MAX_MESSAGE ? cut(runs, MAX_MESSAGE) : runs;
}

/**
 * `text` made fit to send as an error_description, within clippedMessage's bounds: compatibility forms
 * decomposed (`…` is `...`, `ﬁ` is `fi`) and accents dropped (`é` is `e`),
 * `§` written out as "section", curly quotes and `"` as `'`, `\` as `/`,
 * dashes as `-`, white space as a space; any other character outside the
 * allowed set becomes `?`. Text that already conforms, within the bounds, comes back unchanged.
 */
export function errorDescription(text: string): string {
  let out = clippedMessage(text).normalize('NFKD').replace(/\p{M}/gu, '');
  for (const [pattern, standIn] of STAND_INS) out = out.replace(pattern, standIn);
  return out.replace(OUTSIDE, '?');
}

