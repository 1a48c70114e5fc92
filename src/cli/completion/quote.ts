// Quoting a word for the completion scripts: one rule for bash and zsh, one for fish.

/** A word in single quotes for a POSIX shell (bash, zsh): `it's` is `'it'\''s'`. */
export function posixQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A word in single quotes for fish, where a backslash escapes a quote or a backslash. */
export function fishQuote(text: string): string {
  return `'${text.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}
