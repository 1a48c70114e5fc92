// What a completion script must know of the program, read from the commander
// program itself: every command path, its subcommands, the options parsed
// there (which take a value, which values they accept) and the choices of its
// arguments. The shells' scripts are written from this alone, so a new
// command, option or `.choices()` is completed without anyone listing it.
import type { Command, Option } from 'commander';

export interface OptionSpec {
  /** Its flags, the long one first: `--duration`, `-d`. */
  flags: string[];
  description: string;
  /**
   * What commander does with the word after it: nothing; take it, whatever it
   * is (`<value>`); or take it unless it starts with "-" (`[value]`).
   */
  value: 'none' | 'required' | 'optional';
  /** The values it accepts when they are a fixed set (`.choices()`), else empty. */
  choices: readonly string[];
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
  /** The fixed values of each positional argument, in order (empty when free). */
  arguments: Array<readonly string[]>;
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
      arguments: command.registeredArguments.map((a) => a.argChoices ?? []),
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
 * The fixed values to complete, keyed as the scripts look them up: `<command path>|<flag>`
 * for an option's value, `<command path>|#<index>` for a positional argument.
 */
export function choiceTable(specs: CommandSpec[]): Array<readonly [key: string, values: readonly string[]]> {
  return specs.flatMap((c) => [
    ...c.options.filter((o) => o.choices.length > 0).flatMap((o) => o.flags.map((flag) => [`${c.path.join(' ')}|${flag}`, o.choices] as const)),
    ...c.arguments.flatMap((values, index) => (values.length > 0 ? [[`${c.path.join(' ')}|#${index}`, values] as const] : [])),
  ]);
}

function optionSpec(option: Option, offered: boolean): OptionSpec {
  return {
    flags: [option.long, option.short].filter((f): f is string => f !== undefined),
    description: firstLine(option.description),
    value: option.required ? 'required' : option.optional ? 'optional' : 'none',
    choices: option.argChoices ?? [],
    offered,
  };
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}
