// The text of an `error_description` as the OAuth RFCs allow it on the wire:
// printable ASCII without `"` and `\` (RFC 6749 §5.2 and §4.1.2.1, RFC 6750
// §3: %x20-21 / %x23-5B / %x5D-7E). Messages are written for people and may
// quote a calendar's name or use typographic characters; every writer of an
// error_description (JSON bodies, redirects, WWW-Authenticate challenges)
// passes its text through errorDescription, so none of them can break the rule.

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

/**
 * `text` made fit to send as an error_description: compatibility forms
 * decomposed (`…` is `...`, `ﬁ` is `fi`) and accents dropped (`é` is `e`),
 * `§` written out as "section", curly quotes and `"` as `'`, `\` as `/`,
 * dashes as `-`, white space as a space; any other character outside the
 * allowed set becomes `?`. Text that already conforms comes back unchanged.
 */
export function errorDescription(text: string): string {
  let out = text.normalize('NFKD').replace(/\p{M}/gu, '');
  for (const [pattern, standIn] of STAND_INS) out = out.replace(pattern, standIn);
  return out.replace(OUTSIDE, '?');
}

