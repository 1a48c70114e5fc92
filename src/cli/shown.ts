// Stored data printed by the commands (audit, grants, agents, calendar
// listings): each value is escaped (src/terminal-text.ts), so a client's name
// or a reported tool name cannot forge, erase or reorder a line of output.
import { printable, printableClipped } from '../terminal-text.js';

export { printable };

/** A template whose interpolated values are stored data: each is passed through `printable`, the literal text is kept. */
export function shown(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, literal, i) => out + literal + (i < values.length ? printable(String(values[i])) : ''), '');
}

/**
 * A value another program sent and the CLI keeps in its token cache (a deployment's resource_name and client_name, an
 * access token's claims, the scope and authorization_details of a token response), on one line: escaped, cut at `max`
 * characters; a value that is not text as JSON writes it. Found in review (regress21e): `status` printed these as they
 * came, so an agent's deployment could retitle the terminal, colour its lines or forge them.
 */
export function shownClipped(value: unknown, max = 200): string {
  return printableClipped(typeof value === 'string' ? value : String(JSON.stringify(value)), max);
}

/** Each item of a list another program sent (an authorization detail's actions or locations) as shownClipped; [] for what is not a list. */
export function shownItems(list: unknown, max = 200): string[] {
  return Array.isArray(list) ? list.map((item) => shownClipped(item, max)) : [];
}

/**
 * A client as a line names it: its registered name in double quotes (a quote or backslash in it escaped with a
 * backslash), then its id. Anyone may register any name, spaces, parentheses and quotes in it: found in review
 * (s24new3), `Claude Desktop (cli_…)  …  denied` printed bare before the real id read as another client's line.
 * Quoted, the name ends where its quotes do. Control characters are left to `printable`, which the line passes through.
 */
export function namedClient(name: string, clientId: string): string {
  return `"${name.replace(/["\\]/g, (c) => `\\${c}`)}" (${clientId})`;
}

/**
 * namedClient for a name and id another program sent (a deployment's client registration, kept in the token cache):
 * each cut at `max` characters, then quoted, then escaped as shownClipped would. Quoted before it is escaped, so a
 * control character reads `\e` there as on the lines of `grants`, not `\\e`.
 */
export function namedClientClipped(name: string, clientId: string, max = 100): string {
  return printable(namedClient(clipped(name, max), clipped(clientId, max)));
}

/** `text` cut at `max` characters (code points), as printableClipped cuts, without escaping. */
function clipped(text: string, max: number): string {
  const chars = [...text.slice(0, 2 * max + 2)];
  return chars.length > max ? `${chars.slice(0, max).join('')}…` : text;
}
