// Stored data printed by the commands (audit, grants, agents, calendar
// listings): each value is escaped (src/terminal-text.ts), so a client's name
// or a reported tool name cannot forge, erase or reorder a line of output.
import { printable } from '../terminal-text.js';

export { printable };

/** A template whose interpolated values are stored data: each is passed through `printable`, the literal text is kept. */
export function shown(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, literal, i) => out + literal + (i < values.length ? printable(String(values[i])) : ''), '');
}
