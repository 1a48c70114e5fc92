// The CLI's token cache as tests reach into it: the access tokens marked expired, so that the next command refreshes
// first (the authorization server still takes them).
import { readFile, writeFile } from 'node:fs/promises';

/** The part of tokens.json these tests read and change. */
export type CacheFile = { tokens: Record<string, Record<string, { expires_at: number; refresh_token: string }>> };

/** Marks every cached access token in the cache at `path` expired (through whatever is there: a link, a mount); returns the last refresh token. */
export async function expireCachedTokens(path: string): Promise<string> {
  const file = JSON.parse(await readFile(path, 'utf8')) as CacheFile;
  let refreshToken = '';
  for (const byResource of Object.values(file.tokens)) {
    for (const entry of Object.values(byResource)) {
      entry.expires_at = 0;
      refreshToken = entry.refresh_token;
    }
  }
  await writeFile(path, JSON.stringify(file), { mode: 0o600 });
  return refreshToken;
}
