// `delegate completion bash|zsh|fish`: a completion script for the shell,
// generated from the program itself (src/cli/completion/), so every command,
// option and fixed value is in it.
import type { Command } from 'commander';
import { bashScript } from '../completion/bash.js';
import { fishScript } from '../completion/fish.js';
import { completionSpec } from '../completion/spec.js';
import { zshScript } from '../completion/zsh.js';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(shell: Shell, program: Command): string {
  const specs = completionSpec(program);
  switch (shell) {
    case 'bash':
      return bashScript(specs);
    case 'zsh':
      return zshScript(specs);
    case 'fish':
      return fishScript(specs);
  }
}

export async function completionCommand(shell: Shell, program: Command, io: CliIo): Promise<number> {
  io.stdout.write(completionScript(shell, program));
  return EXIT_OK;
}
