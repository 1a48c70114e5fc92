// The zsh completion script, written from the program's completion spec: the
// same walk as bash's (options and their values skipped wherever they stand),
// with the descriptions of commands and options, `--name=value` completed
// after the `=`, and file names (`_files`) where a value names a file. It works both sourced (after compinit) and as `_delegate` in $fpath.
import { posixQuote as q } from './quote.js';
import { flagsTaking, valueTable, type CommandSpec } from './spec.js';

export function zshScript(specs: CommandSpec[]): string {
  const described = (name: string, description: string) => q(`${name.replace(/:/g, '\\:')}:${description}`);
  const list = (words: readonly string[]) => words.map(q).join(' ');
  const at = specs
    .map((c) => {
      return [
        `    (${q(c.path.join(' '))})`,
        `      subcommands=(${c.subcommands.map((s) => described(s.name, s.description)).join(' ')})`,
        `      names=(${list(c.subcommands.map((s) => s.name))})`,
        `      offered=(${c.options.filter((o) => o.offered).map((o) => described(o.flags[0] ?? '', o.description)).join(' ')})`,
        `      required=(${list(flagsTaking(c, 'required'))})`,
        `      optional=(${list(flagsTaking(c, 'optional'))}) ;;`,
      ].join('\n');
    })
    .join('\n');
  const values = valueTable(specs)
    .map(([key, value]) => `    (${q(key)}) choices=(${list(value.choices)}) files=${value.files ? 1 : 0} ;;`)
    .join('\n');
  const root = q(specs[0]?.path.join(' ') ?? 'delegate');
  return `#compdef delegate
# delegate completion for zsh: source <(delegate completion zsh), after compinit
# Written by \`delegate completion zsh\` from the program's own commands and options.

# _delegate_at PATH: the subcommands of command PATH ('delegate calendar'), the
# options to offer there, and the options that take a value (required: the
# next word, whatever it is; optional: the next word unless it starts with -).
_delegate_at() {
  case $1 in
${at}
    (*) subcommands=() names=() offered=() required=() optional=() ;;
  esac
}

# _delegate_values 'PATH|--option' or 'PATH|#N': the fixed values of an option,
# or of positional argument N, of command PATH, and whether it names a file.
_delegate_values() {
  case $1 in
${values}
    (*) choices=() files=0 ;;
  esac
}

_delegate() {
  local -a subcommands names offered required optional choices
  local cmdpath=${root} word option='' cur=$words[CURRENT]
  integer i=2 n=0 ended=0 ret=1 files=0
  _delegate_at $cmdpath
  while (( i < CURRENT )); do
    word=$words[i]
    if (( ended )); then
      (( n++ ))
    elif [[ $word == -- ]]; then
      ended=1
    elif [[ $word == -?*=* ]]; then
      :
    elif [[ $word == -* ]] && (( \${required[(Ie)$word]} )); then
      if (( i + 1 == CURRENT )); then option=$word; break; fi
      (( i++ ))
    elif [[ $word == -* ]] && (( \${optional[(Ie)$word]} )); then
      if (( i + 1 == CURRENT )) && [[ $cur != -* ]]; then option=$word; break; fi
      [[ $words[i+1] != -* ]] && (( i++ ))
    elif [[ $word == -* ]]; then
      :
    elif (( n == 0 && \${names[(Ie)$word]} )); then
      cmdpath="$cmdpath $word"
      _delegate_at $cmdpath
    else
      (( n++ ))
    fi
    (( i++ ))
  done
  if [[ -z $option && ended -eq 0 && $cur == -?*=* ]] && (( \${required[(Ie)\${cur%%=*}]} + \${optional[(Ie)\${cur%%=*}]} )); then
    option=\${cur%%=*}
    compset -P '*='
  fi
  if [[ -n $option ]]; then
    _delegate_values "$cmdpath|$option"
    (( $#choices )) && compadd -a choices && ret=0
    (( files )) && _files && ret=0
  elif (( ! ended )) && [[ $cur == -* ]]; then
    _describe -t options option offered && ret=0
  else
    _delegate_values "$cmdpath|#$n"
    (( n == 0 && $#subcommands )) && _describe -t commands command subcommands && ret=0
    (( $#choices )) && compadd -a choices && ret=0
    (( files )) && _files && ret=0
  fi
  return ret
}

if [[ $funcstack[1] == _delegate ]]; then
  _delegate "$@"
else
  compdef _delegate delegate
fi
`;
}
