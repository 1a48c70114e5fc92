// CalendarAgent as an MCP server, independent of how it is reached: the HTTP
// endpoint builds one per request with the caller's verified token as the
// delegation, and a stdio transport can build one for the process with the
// user's cached token (issue 5). Either way the tool acts under the token the
// builder passes in and never under one of its own.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { FIND_SLOT_TOOL, createFindSlotHandler, findSlotInputShape, findSlotOutputShape, type FindSlotDeps } from './tool.js';
import { AGENT_RESOURCE_NAME } from './metadata.js';

export const AGENT_SERVER_INFO = Object.freeze({ name: 'calendar-agent', title: AGENT_RESOURCE_NAME, version: '0.1.0' });

const INSTRUCTIONS =
  "CalendarAgent finds free time in the user's calendar. It sees only when the user is busy, never what their events are. " +
  'Call find_slot with a duration (for example 30m); it searches working hours (Monday to Friday, 09:00 to 17:00) ' +
  "in the next 7 days, in the calendar owner's time zone, unless you give a window or a zone.";

/** Tool dependencies minus the per-call parts; the same for every server the agent builds. */
export type AgentMcpDeps = FindSlotDeps;

export function createAgentMcpServer(deps: AgentMcpDeps): McpServer {
  const server = new McpServer(AGENT_SERVER_INFO, {
    instructions: INSTRUCTIONS,
    capabilities: { tools: { listChanged: false } },
    // The tool takes four short strings; anything much larger is abuse.
    maxToolInputElements: 64,
  });
  const findSlot = createFindSlotHandler(deps);
  server.registerTool(
    FIND_SLOT_TOOL,
    {
      title: 'Find a free slot',
      description:
        "Finds the first free time slots of the given duration in the user's calendar, during working hours. " +
        'Returns the slots with their time zone, and says so when there is none.',
      inputSchema: findSlotInputShape,
      outputSchema: findSlotOutputShape,
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
    (input, extra) => findSlot(input, extra),
  );
  return server;
}
