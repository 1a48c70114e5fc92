// What a completion script must know of the program, read from the commander
// program itself: every command path, its subcommands, the options parsed
// there (which take a value, which values they accept, which name a file) and
// the choices of its arguments (or that they name a file). The shells' scripts
// are written from this alone, so a new command, option, `.choices()` or
// `<file>` is completed without anyone listing it.
import type { Argument, Command, Option } from 'commander';

/** What to complete for a value, an option's or a positional argument's. */
export interface ValueSpec {
  /** The values it accepts when they are a fixed set (`.choices()`), else empty. */
  choices: readonly string[];
  /** Whether it names a file (its placeholder says so: `<file>`, `<file-or-url>`), so file names are completed there. */
  files: boolean;
}

export interface OptionSpec extends ValueSpec {
  /** Its flags, the long one first: `--duration`, `-d`. */
  flags: string[];
  description: string;
  /**
   * What commander does with the word after it: nothing; take it, whatever it
   * is (`<value>`); or take it unless it starts with "-" (`[value]`).
   */
  value: 'none' | 'required' | 'optional';
  /** Whether to offer it: hidden options, and those of a command group above, parse here but are not offered. */
  offered: boolean;
}

export interface CommandSpec {
  /** The words that run it: `['delegate']`, `['delegate', 'calendar', 'add']`. */
  path: string[];
  description: string;
  subcommands: Array<{ name: string; description: string }>;
  /**
   * Every option commander parses on this command line: its own, and those of
   * the commands above it (commander reads a command's options anywhere after
   * it, so `delegate login --profile work` is `--profile`'s too).
   */
  options: OptionSpec[];
  /** What to complete for each positional argument, in order. */
  arguments: ValueSpec[];
}

/** Every command of the program, the program itself first, each before its subcommands. */
export function completionSpec(program: Command): CommandSpec[] {
  const specs: CommandSpec[] = [];
  const visit = (command: Command, path: string[], above: OptionSpec[]): void => {
    const help = command.createHelp();
    const visible = new Set(help.visibleOptions(command));
    const own = [...command.options, ...help.visibleOptions(command).filter((o) => !command.options.includes(o))].map((o) =>
      optionSpec(o, visible.has(o) && !(path.length > 1 && o.long === '--version')),
    );
    const options = [...own, ...above.filter((o) => !own.some((mine) => mine.flags[0] === o.flags[0]))];
    const subcommands = help.visibleCommands(command).filter((c) => c.name() !== 'help');
    specs.push({
      path,
      description: firstLine(command.description()),
      subcommands: subcommands.map((c) => ({ name: c.name(), description: firstLine(c.description()) })),
      options,
      arguments: command.registeredArguments.map(argumentSpec),
    });
    // Below the program, its own (global) options stay offered; a group's (`token`'s ports under `token exchange`) do not.
    const passedDown = options
      .filter((o) => o.flags[0] !== '--help' && o.flags[0] !== '--version')
      .map((o) => (own.includes(o) ? { ...o, offered: o.offered && path.length === 1 } : o));
    for (const sub of subcommands) visit(sub, [...path, sub.name()], passedDown);
  };
  visit(program, [program.name()], []);
  return specs;
}

/** The flags of a command's options whose value commander takes always (`required`) or unless it starts with "-" (`optional`). */
export function flagsTaking(command: CommandSpec, value: 'required' | 'optional'): string[] {
  return command.options.filter((o) => o.value === value).flatMap((o) => o.flags);
}

/**
 * The values that complete to something (fixed values, file names), keyed as the scripts look them up:
 * `<command path>|<flag>` for an option's value, `<command path>|#<index>` for a positional argument.
 */
export function valueTable(specs: CommandSpec[]): Array<readonly [key: string, value: ValueSpec]> {
  const completes = (v: ValueSpec) => v.choices.length > 0 || v.files;
  return specs.flatMap((c) => [
    ...c.options.filter((o) => o.value !== 'none' && completes(o)).flatMap((o) => o.flags.map((flag) => [`${c.path.join(' ')}|${flag}`, o] as const)),
    ...c.arguments.flatMap((value, index) => (completes(value) ? [[`${c.path.join(' ')}|#${index}`, value] as const] : [])),
  ]);
}

function optionSpec(option: Option, offered: boolean): OptionSpec {
  return {
    flags: [option.long, option.short].filter((f): f is string => f !== undefined),
    description: firstLine(option.description),
    value: option.required ? 'required' : option.optional ? 'optional' : 'none',
    choices: option.argChoices ?? [],
    files: option.required || option.optional ? namesFiles(/[<[]([^>\]]*)[>\]]/.exec(option.flags)?.[1] ?? '') : false,
    offered,
  };
}

function argumentSpec(argument: Argument): ValueSpec {
  return { choices: argument.argChoices ?? [], files: namesFiles(argument.name()) };
}

/**
 * Whether a value's placeholder names a file: one of its words is file, path or dir (`<file>`, `<file-or-url>`,
 * `<key-file>`). Found in review (regress21a): `calendar add work <TAB>` and `token exchange --key <TAB>` completed
 * nothing, where a file's name was wanted.
 */
function namesFiles(placeholder: string): boolean {
  return placeholder.split(/[-_ .]/).some((word) => ['file', 'path', 'dir', 'directory'].includes(word.toLowerCase()));
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}
