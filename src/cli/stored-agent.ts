// Which stored sign-in `--agent-url` names in the commands that read the token cache without signing in (status,
// logout): the one made at that URL (the cache's key), else the one whose tokens are for that audience.
import type { EndedStoredDelegation, StoredDelegation } from '../client/credentials.js';
import { canonicalResource } from '../delegation/resource.js';
import { UsageError } from './errors.js';

/** The cache key of the sign-in selected, and whether it was found by its audience (and so is another URL than the one given). */
export interface SelectedAgent {
  key: string;
  byAudience: boolean;
}

/**
 * The sign-in `agentUrl` names: the one made at that URL, as the cache keys it; else, when none was made there, the one
 * delegation whose audience it is (the resource the agent's metadata named, which may be a parent of the URL signed in
 * at, and under which status showed the agent until review regress20e found that `status --agent-url` with it found
 * nothing). Several delegations for that audience: a usage error naming the URLs they were signed in at.
 */
export function storedAgentKey(agentUrl: string, stored: { delegations: StoredDelegation[]; ended: EndedStoredDelegation[] }): SelectedAgent {
  const given = canonicalResource(agentUrl) ?? agentUrl;
  if ([...stored.delegations, ...stored.ended].some((d) => d.agentUrl === given)) return { key: given, byAudience: false };
  const forAudience = stored.delegations.filter((d) => canonicalResource(d.resource) === given);
  if (forAudience.length > 1) {
    throw new UsageError(
      `--agent-url ${agentUrl} is the audience of ${forAudience.length} stored delegations, signed in at ${forAudience.map((d) => d.agentUrl).join(' and ')}: give the URL of the one you mean.`,
    );
  }
  const [only] = forAudience;
  return only === undefined ? { key: given, byAudience: false } : { key: only.agentUrl, byAudience: true };
}
