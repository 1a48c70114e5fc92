// The bash completion script, written from the program's completion spec:
// one function says what each command path takes, one gives the fixed values
// of an option or argument (or that it names a file), and `_delegate` walks
// the words before the cursor (skipping options and their values, wherever
// they stand) to find the command path the cursor is in.
import { posixQuote as q } from './quote.js';
import { flagsTaking, valueTable, type CommandSpec } from './spec.js';

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
  const values = valueTable(specs)
    .map(([key, value]) => `    ${q(key)}) _delegate_choices=${q(value.choices.join(' '))} _delegate_files=${value.files ? 1 : "''"} ;;`)
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
# or of positional argument N, of command PATH, and whether it names a file.
_delegate_values() {
  case "$1" in
${values}
    *) _delegate_choices='' _delegate_files='' ;;
  esac
}

_delegate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path=${root} word option='' i=1 n=0 ended=0
  local _delegate_commands _delegate_options _delegate_required _delegate_optional _delegate_choices _delegate_files
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
  elif [ "$ended" = 0 ] && [[ $cur == -* ]]; then
    COMPREPLY=( $(compgen -W "$_delegate_options" -- "$cur") )
    return
  else
    _delegate_values "$path|#$n"
    [ "$n" = 0 ] && _delegate_choices="$_delegate_commands $_delegate_choices"
  fi
  COMPREPLY=( $(compgen -W "$_delegate_choices" -- "$cur") )
  if [ -n "$_delegate_files" ]; then
    # File names, read one a line (a name may hold spaces), treated as such: a directory's gets a slash, and each is
    # quoted as it must be on the line. compopt (bash 4) answers only while bash completes, not when _delegate is
    # called otherwise; read, not mapfile, so that bash 3.2 (macOS's) completes them too.
    compopt -o filenames 2>/dev/null
    while IFS= read -r word; do COMPREPLY+=("$word"); done < <(compgen -f -- "$cur")
  fi
}
complete -F _delegate delegate
`;
}
