// How a server closes: it stops accepting connections, closes at once every
// connection on which it is answering nothing, and finishes the answers it
// has started (closing their connections after them), for up to
// IN_FLIGHT_GRACE_MS; then it cuts what is left. The client of a request in
// flight may be another delegate command using the servers this process
// started (the embedded stack): cutting its request after the server acted on
// it (a refresh token rotated, a tool called) would leave it without the
// answer. A connection closed before its request was read is one the client
// may send again (src/client/servers-gone.ts). Node's own close waits for
// connections that never carried a request, and fastify's forced close cuts
// answers; hence this.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export const IN_FLIGHT_GRACE_MS = 3000;

export function finishAnswersOnClose(app: FastifyInstance): void {
  const answering = new Map<Socket, Set<ServerResponse>>();
  let closing = false;
  let cut: NodeJS.Timeout | undefined;

  app.server.on('connection', (socket: Socket) => {
    answering.set(socket, new Set());
    socket.once('close', () => answering.delete(socket));
  });
  app.server.on('request', (_req, res: ServerResponse) => {
    const socket = res.socket;
    const answers = socket ? answering.get(socket) : undefined;
    if (!socket || !answers) return;
    answers.add(res);
    if (closing) res.shouldKeepAlive = false;
    res.once('close', () => {
      answers.delete(res);
      if (closing && answers.size === 0) socket.end();
    });
  });

  app.addHook('preClose', async () => {
    closing = true;
    for (const [socket, answers] of answering) {
      if (answers.size === 0) socket.destroy();
      else for (const res of answers) if (!res.headersSent) res.shouldKeepAlive = false;
    }
    cut = setTimeout(() => app.server.closeAllConnections(), IN_FLIGHT_GRACE_MS);
  });
  app.addHook('onClose', async () => clearTimeout(cut));
}
