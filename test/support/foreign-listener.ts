// A program of another user of this machine listening on a loopback port: a
// node script run as `nobody` (so only as root, as CI runs), which prints
// "listening" once bound and then one JSON line per request it receives
// (method, path, authorization header, body). The owner's uid and root's are
// never "another user" (src/http/listener-owner.ts), hence `nobody`.
import { spawn, type ChildProcess } from 'node:child_process';

export const NOBODY = 65534;
export const asRoot = process.getuid?.() === 0;

export interface ReceivedRequest {
  method: string;
  path: string;
  authorization: string | null;
  body: string;
}

export interface ForeignListener {
  child: ChildProcess;
  requests(): ReceivedRequest[];
  stop(): void;
}

/** Records every request and answers it 200 "received". */
export const RECORDER = `
const http = require('node:http');
const [port] = process.argv.slice(1);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    console.log(JSON.stringify({ method: req.method, path: req.url, authorization: req.headers.authorization ?? null, body }));
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end('received');
  });
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
`;

/** Runs `script` (argv: the port, then `args`) as nobody; resolves once it printed "listening". */
export async function listenAsNobody(port: number, script = RECORDER, args: string[] = []): Promise<ForeignListener> {
  const child = spawn(process.execPath, ['-e', script, String(port), ...args], { uid: NOBODY, gid: NOBODY, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the listener of nobody on port ${port} did not start`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    child,
    requests: () =>
      out
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as ReceivedRequest),
    stop: () => child.kill('SIGKILL'),
  };
}
