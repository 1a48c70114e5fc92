// The CLI's entry point (bin/delegate imports its bundle, built from here): binds the
// program to this process — its arguments, environment, clock, streams,
// browser and signals — runs it, and exits (a broken pipe aside, src/cli/end-on-stream-error.ts).
import { processEnv } from '../config.js';
import { guardProcessFetch } from '../http/listener-owner.js';
import type { CliIo } from './io.js';
import { endOnStreamError } from './end-on-stream-error.js';
import { runCli } from './program.js';

const io: CliIo = {
  env: processEnv(),
  now: () => Date.now(),
  stdin: process.stdin,
  async readLine(signal) {
    const { createInterface } = await import('node:readline');
    const rl = createInterface({ input: process.stdin, terminal: false });
    try {
      return await new Promise<string | undefined>((resolve) => {
        if (signal.aborted) return resolve(undefined);
        signal.addEventListener('abort', () => resolve(undefined), { once: true });
        rl.once('line', (line) => resolve(line));
        rl.once('close', () => resolve(undefined));
      });
    } finally {
      rl.close();
      process.stdin.pause();
    }
  },
  async readHiddenLine(prompt) {
    const { readHiddenLine } = await import('./hidden-input.js');
    return readHiddenLine(process.stdin, () => process.stderr.write(prompt));
  },
  async readAll() {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  },
  stdout: process.stdout,
  stderr: process.stderr,
  async openBrowser(url) {
    try {
      const { default: open } = await import('open');
      await open(url);
    } catch {
      // No browser here: the link is on stderr already.
    }
  },
  untilInterrupted() {
    return new Promise((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve(signal);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};

endOnStreamError();

// No request of this process (the client's, or its servers') goes to a port of this machine that another user holds.
guardProcessFetch();
// Alive until the command ends, whatever it waits on: undici's fetch leaves no handle of its own while it fails a
// connection the peer reset at once, so a command waiting only on that (a probe of a port another program of this
// user holds and drops) ended with Node's exit code 13 for an unsettled top-level await, saying nothing, before the
// rejection came some 40 ms later (found in review, s26). Every wait in a command is bounded by a timer of its own.
const alive = setInterval(() => undefined, 2 ** 30);
const code = await runCli(process.argv.slice(2), io).finally(() => clearInterval(alive));
// Let buffered output reach pipes, then exit: idle keep-alive sockets and
// the like must not keep a finished command alive.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
process.exit(code);
