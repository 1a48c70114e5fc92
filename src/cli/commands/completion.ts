// `delegate completion bash|zsh|fish`: a completion script for the shell,
// generated from the program itself, so every command and option is in it.
import type { Command } from 'commander';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

interface CommandInfo {
  name: string;
  description: string;
  options: Array<{ flag: string; description: string }>;
}

export function commandsOf(program: Command): CommandInfo[] {
  return program.commands
    .filter((c) => c.name() !== 'help')
    .map((c) => ({
      name: c.name(),
      description: c.description().split('\n')[0] ?? '',
      options: [...c.options, ...program.options]
        .map((o) => ({ flag: o.long ?? o.short ?? '', description: o.description }))
        .concat([{ flag: '--help', description: 'show help' }])
        .filter((o) => o.flag !== '' && o.flag !== '--version'),
    }));
}

export function completionScript(shell: Shell, program: Command): string {
  const commands = commandsOf(program);
  switch (shell) {
    case 'bash':
      return bash(commands);
    case 'zsh':
      return zsh(commands);
    case 'fish':
      return fish(commands);
  }
}

export async function completionCommand(shell: Shell, program: Command, io: CliIo): Promise<number> {
  io.stdout.write(completionScript(shell, program));
  return EXIT_OK;
}

function bash(commands: CommandInfo[]): string {
  const cases = commands
    .filter((c) => c.name !== 'completion')
    .map((c) => `    ${c.name}) opts=${sq(c.options.map((o) => o.flag).join(' '))} ;;`)
    .join('\n');
  return `# delegate completion for bash: source <(delegate completion bash)
_delegate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W ${sq(`${commands.map((c) => c.name).join(' ')} --help --version`)} -- "$cur") )
    return
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    completion) opts='bash zsh fish' ;;
    *) opts='' ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -F _delegate delegate
`;
}

function zsh(commands: CommandInfo[]): string {
  const described = commands.map((c) => `    ${sq(`${c.name}:${c.description.replace(/:/g, '\\:')}`)}`).join('\n');
  const cases = commands.map((c) => `    ${c.name}) compadd -- ${c.options.map((o) => o.flag).join(' ')} ;;`).join('\n');
  return `#compdef delegate
# delegate completion for zsh: source <(delegate completion zsh)
_delegate() {
  local -a commands
  commands=(
${described}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  case $words[2] in
${cases}
  esac
}
compdef _delegate delegate
`;
}

function fish(commands: CommandInfo[]): string {
  const lines = ['# delegate completion for fish: delegate completion fish | source', 'complete -c delegate -f'];
  for (const c of commands) {
    lines.push(`complete -c delegate -n '__fish_use_subcommand' -a ${c.name} -d ${sq(c.description)}`);
    for (const o of c.options) {
      lines.push(`complete -c delegate -n '__fish_seen_subcommand_from ${c.name}' -l ${o.flag.replace(/^--/, '')} -d ${sq(o.description)}`);
    }
  }
  lines.push(`complete -c delegate -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'`);
  return `${lines.join('\n')}\n`;
}

function sq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
