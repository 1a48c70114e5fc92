// The authorization server's public surface.
export { buildAuthServer, type AuthServerOptions } from './server.js';
export { bootstrapLocal, type LocalSetup } from './bootstrap.js';
export { registerAgent, type AgentMove, type AgentRegistration } from './agents.js';
export { DEFAULT_LIFETIMES, type Lifetimes } from './context.js';
export { OWNER_ASSERTION_ISSUER, OWNER_ASSERTION_SUBJECT, OWNER_ASSERTION_MAX_LIFETIME_SEC } from './owner-login.js';
export { listAgents, describeAgent } from './agents.js';
export type { AgentProfile, AgentVerification, VerifiedAgent } from './agent-statement.js';
export { addUser, UserError } from './users.js';
export { loadKeyRing } from './keys.js';
