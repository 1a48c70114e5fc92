// The fish completion script, written from the program's completion spec:
// `__delegate_state` walks the words before the cursor as bash's and zsh's
// scripts do (options and their values skipped wherever they stand), and every
// subcommand, option and fixed value is offered under the condition that the
// cursor is in its command. File names are offered only where a value names a
// file (`-F` overrides the script's `complete -c delegate -f` there).
import { fishQuote as q } from './quote.js';
import { flagsTaking, type CommandSpec } from './spec.js';

export function fishScript(specs: CommandSpec[]): string {
  const words = specs
    .flatMap((c) => {
      const path = c.path.join(' ');
      const lists: Array<[string, string[]]> = [
        ['commands', c.subcommands.map((s) => s.name)],
        ['required', flagsTaking(c, 'required')],
        ['optional', flagsTaking(c, 'optional')],
      ];
      return lists
        .filter(([, list]) => list.length > 0)
        .map(([kind, list]) => `        case ${q(`${kind}|${path}`)}\n            printf '%s\\n' ${list.map(q).join(' ')}`);
    })
    .join('\n');
  const completions: string[] = [];
  const when = (path: string[], position?: number) => q(`__delegate_is ${q(path.join(' '))}${position === undefined ? '' : ` ${position}`}`);
  for (const c of specs) {
    for (const s of c.subcommands) completions.push(`complete -c delegate -n ${when(c.path, 0)} -a ${q(s.name)} -d ${q(s.description)}`);
    for (const o of c.options.filter((o) => o.offered)) {
      const flags = o.flags.map((f) => (f.startsWith('--') ? `-l ${q(f.slice(2))}` : `-s ${q(f.slice(1))}`)).join(' ');
      // -x: a value, and no file names (fish offers them after -r alone, despite `complete -c delegate -f`), but where it names a file.
      const value = o.value !== 'required' ? '' : o.choices.length > 0 ? ` -x -a ${q(o.choices.join(' '))}` : o.files ? ' -r -F' : ' -x';
      completions.push(`complete -c delegate -n ${when(c.path)} ${flags} -d ${q(o.description)}${value}`);
    }
    c.arguments.forEach((value, index) => {
      if (value.choices.length > 0) completions.push(`complete -c delegate -n ${when(c.path, index)} -a ${q(value.choices.join(' '))}`);
      if (value.files) completions.push(`complete -c delegate -n ${when(c.path, index)} -F`);
    });
  }
  const root = q(specs[0]?.path.join(' ') ?? 'delegate');
  return `# delegate completion for fish: delegate completion fish | source
# Written by \`delegate completion fish\` from the program's own commands and options.

# __delegate_words KIND PATH: the subcommands of command PATH ('delegate
# calendar'), or its options that take a value (required: the next word,
# whatever it is; optional: the next word unless it starts with -).
function __delegate_words --argument-names kind path
    switch "$kind|$path"
${words}
    end
end

# __delegate_state: the command path the cursor is in, how many positional
# arguments it has before the cursor, and the option awaiting its value there
# (or .), one a line.
function __delegate_state
    set -l words (commandline -opc)
    set -l path ${root}
    set -l commands (__delegate_words commands $path)
    set -l required (__delegate_words required $path)
    set -l optional (__delegate_words optional $path)
    set -l n 0
    set -l ended 0
    set -l last (count $words)
    set -l i 2
    while test $i -le $last
        set -l word $words[$i]
        if test $ended = 1
            set n (math $n + 1)
        else if test "$word" = --
            set ended 1
        else if string match -q -- '-?*=*' $word
            true
        else if string match -q -- '-*' $word; and contains -- $word $required
            if test $i -eq $last
                printf '%s\\n' $path $n $word
                return
            end
            set i (math $i + 1)
        else if string match -q -- '-*' $word; and contains -- $word $optional
            if test $i -eq $last; and not string match -q -- '-*' (commandline -ct)
                printf '%s\\n' $path $n $word
                return
            end
            set -l next (math $i + 1)
            if test $next -le $last; and not string match -q -- '-*' $words[$next]
                set i $next
            end
        else if string match -q -- '-*' $word
            true
        else if test $n = 0; and contains -- $word $commands
            set path "$path $word"
            set commands (__delegate_words commands $path)
            set required (__delegate_words required $path)
            set optional (__delegate_words optional $path)
        else
            set n (math $n + 1)
        end
        set i (math $i + 1)
    end
    printf '%s\\n' $path $n .
end

# __delegate_is PATH [N]: whether the cursor is in command PATH (and, given N,
# at its positional argument N with no option awaiting a value).
function __delegate_is --argument-names path position
    set -l state (__delegate_state)
    test "$state[1]" = "$path"; or return 1
    test -z "$position"; and return 0
    test "$state[2]" = "$position"; and test "$state[3]" = .
end

complete -c delegate -f
${completions.join('\n')}
`;
}
