// Module resolution hooks (they run off the main thread): append each resolved URL to the trace file.
import { appendFileSync } from 'node:fs';

let out;

export function initialize(data) {
  out = data?.out;
}

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (out) appendFileSync(out, `${result.url}\n`);
  return result;
}
