// The bash completion script, written from the program's completion spec:
// one function says what each command path takes, one gives the fixed values
// of an option or argument, and `_delegate` walks the words before the cursor
// (skipping options and their values, wherever they stand) to find the
// command path the cursor is in.
import { posixQuote as q } from './quote.js';
import { choiceTable, flagsTaking, type CommandSpec } from './spec.js';

export function bashScript(specs: CommandSpec[]): string {
  const at = specs
    .map((c) => {
      return [
        `    ${q(c.path.join(' '))})`,
        `      _delegate_commands=${q(c.subcommands.map((s) => s.name).join(' '))}`,
        `      _delegate_options=${q(c.options.filter((o) => o.offered).map((o) => o.flags[0]).join(' '))}`,
        `      _delegate_required=${q(` ${flagsTaking(c, 'required').join(' ')} `)}`,
        `      _delegate_optional=${q(` ${flagsTaking(c, 'optional').join(' ')} `)} ;;`,
      ].join('\n');
    })
    .join('\n');
  const choices = choiceTable(specs)
    .map(([key, values]) => `    ${q(key)}) _delegate_choices=${q(values.join(' '))} ;;`)
    .join('\n');
  const root = q(specs[0]?.path.join(' ') ?? 'delegate');
  return `# delegate completion for bash: source <(delegate completion bash)
# Written by \`delegate completion bash\` from the program's own commands and options.

# _delegate_at PATH: the subcommands of command PATH ('delegate calendar'), the
# options to offer there, and the options that take a value (required: the
# next word, whatever it is; optional: the next word unless it starts with -).
_delegate_at() {
  case "$1" in
${at}
    *) _delegate_commands='' _delegate_options='' _delegate_required=' ' _delegate_optional=' ' ;;
  esac
}

# _delegate_values 'PATH|--option' or 'PATH|#N': the fixed values of an option,
# or of positional argument N, of command PATH.
_delegate_values() {
  case "$1" in
${choices}
    *) _delegate_choices='' ;;
  esac
}

_delegate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path=${root} word option='' i=1 n=0 ended=0
  local _delegate_commands _delegate_options _delegate_required _delegate_optional _delegate_choices
  _delegate_at "$path"
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word=\${COMP_WORDS[i]}
    if [ "$ended" = 1 ]; then
      n=$((n + 1))
    elif [ "$word" = -- ]; then
      ended=1
    elif [[ $word == -?*=* ]]; then
      :
    elif [[ $word == -* && $_delegate_required == *" $word "* ]]; then
      # bash splits --name=value into --name, =, value (the = is the cursor's word right after --name=).
      [ $((i + 1)) -lt "$COMP_CWORD" ] && [ "\${COMP_WORDS[i + 1]}" = '=' ] && i=$((i + 1))
      if [ $((i + 1)) -eq "$COMP_CWORD" ]; then option=$word; break; fi
      i=$((i + 1))
    elif [[ $word == -* && $_delegate_optional == *" $word "* ]]; then
      [ $((i + 1)) -lt "$COMP_CWORD" ] && [ "\${COMP_WORDS[i + 1]}" = '=' ] && i=$((i + 1))
      if [ $((i + 1)) -eq "$COMP_CWORD" ] && [[ $cur != -* ]]; then option=$word; break; fi
      [[ \${COMP_WORDS[i + 1]} != -* ]] && i=$((i + 1))
    elif [[ $word == -* ]]; then
      :
    elif [ "$n" = 0 ] && [[ " $_delegate_commands " == *" $word "* ]]; then
      path="$path $word"
      _delegate_at "$path"
    else
      n=$((n + 1))
    fi
    i=$((i + 1))
  done
  if [ -n "$option" ]; then
    [ "$cur" = '=' ] && cur=''
    _delegate_values "$path|$option"
    COMPREPLY=( $(compgen -W "$_delegate_choices" -- "$cur") )
  elif [ "$ended" = 0 ] && [[ $cur == -* ]]; then
    COMPREPLY=( $(compgen -W "$_delegate_options" -- "$cur") )
  else
    _delegate_values "$path|#$n"
    [ "$n" = 0 ] && _delegate_choices="$_delegate_commands $_delegate_choices"
    COMPREPLY=( $(compgen -W "$_delegate_choices" -- "$cur") )
  fi
}
complete -F _delegate delegate
`;
}
