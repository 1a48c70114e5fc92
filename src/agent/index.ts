// CalendarAgent's public surface: the server builder, its MCP server (for a
// stdio transport), its identity key and its token exchange client.
export { buildAgentServer, type AgentServerOptions } from './server.js';
export { createAgentMcpServer, agentMcpDeps, AGENT_SERVER_INFO, type AgentMcpDeps, type AgentRuntimeOptions } from './mcp.js';
export {
  FIND_SLOT_TOOL,
  bearerCallerToken,
  type CallerToken,
  type FindSlotDeps,
  type FindSlotInput,
  type FindSlotOutput,
} from './tool.js';
export { loadOrCreateAgentKey, AgentKeyError, DEFAULT_AGENT_CLIENT_ID, type AgentIdentity, type AgentKeyErrorCode } from './identity.js';
export {
  createTokenExchanger,
  TokenExchangeError,
  type TokenExchanger,
  type TokenExchangeErrorCode,
  type TokenExchangeRequest,
  type ExchangedToken,
} from './exchange.js';
export { protectedResourceMetadata, type ProtectedResourceMetadata } from './metadata.js';
export { protectedResourceMetadataUrl } from '../delegation/resource.js';
export { DEFAULT_CALENDAR_TIMEOUT_MS, CalendarError, type CalendarErrorCode } from './calendar-client.js';
