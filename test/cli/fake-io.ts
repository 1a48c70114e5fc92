// A CliIo for running commands in-process: captured output, a fixed
// environment and clock, and a browser that only records what it was asked to open. The environment has this
// process's PATH unless it names one: the shell a hint's command line is typed in (src/cli/invocation.ts).
import type { CliIo } from '../../src/cli/io.js';

export interface FakeIo extends CliIo {
  out: string;
  err: string;
  opened: string[];
}

export function fakeIo(env: Record<string, string | undefined> = {}, now = () => Date.UTC(2026, 11, 1, 8)): FakeIo {
  const io: FakeIo = {
    out: '',
    err: '',
    opened: [],
    env: 'PATH' in env ? env : { PATH: process.env.PATH, ...env },
    now,
    stdout: { write: (text: string) => void (io.out += text), isTTY: false },
    stderr: { write: (text: string) => void (io.err += text), isTTY: false },
    openBrowser: async (url: string) => void io.opened.push(url),
    untilInterrupted: () => new Promise(() => undefined),
  };
  return io;
}
