// `delegate completion bash|zsh|fish`, run in the shells themselves: bash
// sources the script and its function is called with COMP_WORDS/COMP_CWORD
// set; zsh completes in a real interactive shell on a pseudo-terminal (zpty,
// after compinit), and fish through `complete -C`. Each checks the cases a
// review found missing: global options before the command, the top-level
// options, subcommands of command groups, shell names, and fixed option
// values. zsh and fish are skipped, saying so, where they are not installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../../src/cli/program.js';
import { completionScript } from '../../src/cli/commands/completion.js';
import { fakeIo } from './fake-io.js';

const dir = mkdtempSync(join(tmpdir(), 'delegate-completion-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function installed(shell: string): boolean {
  const found = spawnSync(shell, ['-c', 'exit 0']).status === 0;
  if (!found) console.warn(`Skipping the ${shell} completion tests: ${shell} is not installed here (apt-get install ${shell}).`);
  return found;
}

async function script(shell: string): Promise<string> {
  const io = fakeIo({});
  expect(await runCli(['completion', shell], io)).toBe(0);
  const path = join(dir, `delegate.${shell}`);
  writeFileSync(path, io.out);
  return path;
}

/**
 * What bash's `_delegate` puts in COMPREPLY for the line `words` (the last word is the one at the cursor), run in
 * `cwd`; with `compopt`, the options it set with compopt (a stand-in records them: the builtin answers only while bash
 * completes), after the words and a line `compopt:`.
 */
function bashComplete(path: string, words: string[], options: { cwd?: string; compopt?: boolean } = {}): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const stand = options.compopt ? `compopt() { _compopt+=("$@"); }; _compopt=(); ` : '';
  const shown = options.compopt ? `; printf '%s\\n' compopt: "\${_compopt[@]}"` : '';
  const out = execFileSync('bash', ['-c', `${stand}source '${path}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _delegate; printf '%s\\n' "\${COMPREPLY[@]}"${shown}`], {
    encoding: 'utf8',
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
  });
  return out.split('\n').filter((w) => w !== '');
}

/** A directory holding a file with a space in its name, another file, and a directory with a file in it. */
function filesDir(): string {
  const cwd = join(dir, 'files');
  mkdirSync(join(cwd, 'keys'), { recursive: true });
  for (const file of ['my key.json', 'work.ics', join('keys', 'helper.json')]) writeFileSync(join(cwd, file), '');
  return cwd;
}

describe('bash', () => {
  let path: string;
  const complete = async (...words: string[]) => bashComplete((path ??= await script('bash')), words);

  it('finds the command after the global options, whether or not they take a value', async () => {
    expect(await complete('delegate', '--profile', 'work', 'find-slot', '--d')).toEqual(['--duration', '--debug']);
    expect(await complete('delegate', '--debug', 'find-slot', '--d')).toEqual(['--duration', '--debug']);
    expect(await complete('delegate', '--profile', 'work', 'st')).toEqual(['status']);
    // bash splits --profile=work into --profile, =, work
    expect(await complete('delegate', '--profile', '=', 'work', 'calendar', 'l')).toEqual(['list']);
    // and they may come after it too
    expect(await complete('delegate', 'login', '--profile', 'work', '--d')).toEqual(['--device', '--debug']);
    // an option's value is not taken for a command
    expect(await complete('delegate', '--profile', 'calendar', '')).toContain('find-slot');
  });

  it('offers every top-level option, and commands (not options) for a word without a dash', async () => {
    expect((await complete('delegate', '-')).sort()).toEqual(['--debug', '--help', '--profile', '--version']);
    expect(await complete('delegate', 'st')).toEqual(['status']);
    expect(await complete('delegate', '')).not.toContain('--help');
  });

  // Stop 20: CalendarAgent by its URL on the commands that talk to it, and status's port options (it had none).
  it('offers --agent-url and the port options where they apply, and takes a value after them', async () => {
    for (const command of ['find-slot', 'busy', 'login', 'status', 'token', 'logout']) {
      expect(await complete('delegate', command, '--agent-u'), command).toEqual(['--agent-url']);
    }
    expect((await complete('delegate', 'status', '--a')).sort()).toEqual(['--agent-port', '--agent-url', '--auth-port']);
    expect(await complete('delegate', 'find-slot', '--agent-url', '')).not.toContain('find-slot');
  });

  it('completes the subcommands of command groups', async () => {
    expect(await complete('delegate', 'calendar', '')).toEqual(['add', 'list', 'remove']);
    expect(await complete('delegate', 'grants', '')).toEqual(['list', 'show', 'revoke']);
    expect(await complete('delegate', 'agents', '')).toEqual(['register', 'list', 'show']);
    expect(await complete('delegate', 'users', '')).toEqual(['add', 'list', 'remove', 'set-time-zone']);
    expect(await complete('delegate', 'users', 'remove', '--')).toEqual(expect.arrayContaining(['--yes']));
    expect(await complete('delegate', 'token', '')).toEqual(['exchange']);
    expect(await complete('delegate', 'token', 'exchange', '--as', 'helper', '--j')).toEqual(['--json']);
    expect(await complete('delegate', 'calendar', 'list', '--')).toEqual(expect.arrayContaining(['--json', '--show-urls', '--profile']));
    // once past the group, its subcommand's arguments are free text (a calendar's name)
    expect(await complete('delegate', 'calendar', 'add', '')).toEqual([]);
  });

  it('completes the shell names of completion', async () => {
    expect(await complete('delegate', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
    expect(await complete('delegate', 'completion', 'z')).toEqual(['zsh']);
  });

  it('completes the values of options with a fixed set of choices', async () => {
    expect(await complete('delegate', 'mcp-config', '--client', '')).toEqual(['claude-desktop', 'claude-code', 'json']);
    expect(await complete('delegate', 'find-slot', '--tentative', 'f')).toEqual(['free']);
    expect(await complete('delegate', 'find-slot', '--duration', '30m', '--on-calendar-error', '')).toEqual(['fail', 'skip']);
    expect(await complete('delegate', 'serve', '--log-level', '')).toEqual(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);
    expect(await complete('delegate', 'serve-agent', '--stdio', '--log-level', 'w')).toEqual(['warn']);
    // --tentative=<TAB> and --tentative=b<TAB>, as bash splits them
    expect(await complete('delegate', 'find-slot', '--tentative', '=')).toEqual(['busy', 'free']);
    expect(await complete('delegate', 'find-slot', '--tentative', '=', 'b')).toEqual(['busy']);
    // a value without choices completes nothing, and is skipped afterwards
    expect(await complete('delegate', 'find-slot', '--tz', '')).toEqual([]);
    expect(await complete('delegate', 'find-slot', '--tz', 'UTC', '--json', '--tent')).toEqual(['--tentative']);
  });

  // Found in review (regress21a): these completed nothing (no file names, and no `-o default` to fall back on).
  it('completes file names where a file is wanted, treated as file names (a slash after a directory), and nowhere else', async () => {
    path ??= await script('bash');
    const cwd = filesDir();
    const at = (...words: string[]) => bashComplete(path, words, { cwd }).sort();
    const everything = ['keys', 'my key.json', 'work.ics'];
    expect(at('delegate', 'calendar', 'add', 'work', '')).toEqual(everything);
    expect(at('delegate', 'calendar', 'add', 'work', 'w')).toEqual(['work.ics']);
    expect(at('delegate', 'token', 'exchange', '--key', '')).toEqual(everything);
    expect(at('delegate', 'token', 'exchange', '--key', 'k')).toEqual(['keys']);
    expect(at('delegate', 'token', 'exchange', '--key', 'keys/')).toEqual(['keys/helper.json']);
    expect(at('delegate', 'token', 'exchange', '--subject-token-file', 'my')).toEqual(['my key.json']);
    expect(at('delegate', 'agents', 'register', 'x', '--key', '')).toEqual(everything);
    // --key=<TAB>, as bash splits it
    expect(at('delegate', 'agents', 'register', 'x', '--key', '=', 'w')).toEqual(['work.ics']);
    // bash is told they are file names: it adds the slash after a directory and quotes the space
    expect(bashComplete(path, ['delegate', 'token', 'exchange', '--key', 'k'], { cwd, compopt: true })).toEqual(['keys', 'compopt:', '-o', 'filenames']);
    // and nowhere else: a value that is no file, a calendar's name, a command's place, an option
    expect(at('delegate', 'token', 'exchange', '--audience', '')).toEqual([]);
    expect(at('delegate', 'calendar', 'add', '')).toEqual([]);
    expect(at('delegate', 'agents', 'register', '')).toEqual([]);
    expect(at('delegate', 'calendar', 'remove', 'w')).toEqual([]);
    expect(bashComplete(path, ['delegate', 'calendar', 'l'], { cwd, compopt: true })).toEqual(['list', 'compopt:']);
  });
});

describe('the scripts come from the program itself', () => {
  it('a new command group, option and choice are completed without being listed anywhere', () => {
    const program = new Command('delegate').option('--profile <name>', 'profile');
    const group = program.command('widgets').description('Widgets.');
    group.command('spin').description('Spin one.').addOption(new Option('--speed <speed>', 'how fast').choices(['slow', 'fast']));
    const path = join(dir, 'widgets.bash');
    writeFileSync(path, completionScript('bash', program));
    expect(bashComplete(path, ['delegate', '--profile', 'x', 'widgets', ''])).toEqual(['spin']);
    expect(bashComplete(path, ['delegate', 'widgets', 'spin', '--speed', ''])).toEqual(['slow', 'fast']);
    for (const shell of ['zsh', 'fish'] as const) {
      const text = completionScript(shell, program);
      for (const word of ['widgets', 'spin', '--speed', 'slow', 'fast']) expect(text, shell).toContain(word);
    }
  });

  it('a value whose placeholder names a file completes file names, in each shell', () => {
    const program = new Command('delegate');
    program.command('load').argument('<name>').argument('<path>').option('--config <file>', 'read this').option('--label <text>', 'name it');
    const path = join(dir, 'load.bash');
    writeFileSync(path, completionScript('bash', program));
    const cwd = filesDir();
    expect(bashComplete(path, ['delegate', 'load', 'x', 'w'], { cwd })).toEqual(['work.ics']);
    expect(bashComplete(path, ['delegate', 'load', '--config', 'w'], { cwd })).toEqual(['work.ics']);
    expect(bashComplete(path, ['delegate', 'load', 'w'], { cwd })).toEqual([]);
    expect(bashComplete(path, ['delegate', 'load', '--label', 'w'], { cwd })).toEqual([]);
    // zsh calls _files for them, fish lets file names through (-F) there only; the shells themselves are run below, where installed.
    expect(completionScript('zsh', program)).toContain(`('delegate load|--config') choices=() files=1 ;;`);
    expect(completionScript('zsh', program)).toContain(`('delegate load|#1') choices=() files=1 ;;`);
    expect(completionScript('zsh', program)).toContain('(( files )) && _files');
    expect(completionScript('fish', program)).toContain(`complete -c delegate -n '__delegate_is \\'delegate load\\'' -l 'config' -d 'read this' -r -F`);
    expect(completionScript('fish', program)).toContain(`complete -c delegate -n '__delegate_is \\'delegate load\\' 1' -F`);
    expect(completionScript('fish', program)).not.toContain(`-l 'label' -d 'name it' -r -F`);
  });

  it('refuses a shell it does not know (exit 2)', async () => {
    expect(await runCli(['completion', 'powershell'], fakeIo({}))).toBe(2);
  });

  it('each script names every command of the program', async () => {
    const names = buildProgram(fakeIo(), () => undefined).commands.map((c) => c.name());
    for (const shell of ['bash', 'zsh', 'fish']) {
      const io = fakeIo({});
      expect(await runCli(['completion', shell], io)).toBe(0);
      for (const name of names) expect(io.out, `${shell}: ${name}`).toContain(name);
    }
  });
});

/**
 * What an interactive zsh shows after Tab at the end of each line: its listing
 * (or the line as completed, when one match is inserted), read from a
 * pseudo-terminal. One zsh runs every line, after `compinit` and sourcing the script.
 * After each Tab the driver waits until `shows` (text the completion must put on
 * screen, and that the typed line does not hold) has appeared before it types
 * on. Typed at once, the next keys could arrive before zsh had listed: seen
 * once, under two test suites at a time, when the listing for `delegate --`
 * never appeared (zsh may skip a listing while typed-ahead input waits). A
 * completion that never shows it fails the run by timeout.
 */
function zshComplete(path: string, cases: Array<{ line: string; shows: string }>): string[] {
  for (const { line, shows } of cases) if (line.includes(shows)) throw new Error(`"${shows}" is in the typed line "${line}" itself`);
  const driver = `
zmodload zsh/zpty
zpty -b z 'HOME=${dir} TERM=dumb zsh -f -i'
# The prompt and the markers are split in what is typed, so that their echo never matches.
zpty -w z 'PS1="READ""Y> "; autoload -U compinit; compinit -u -D; source ${path}; zstyle ":completion:*" list-prompt ""; LISTMAX=0'
zpty -r -m z out '*READY> '
for (( i = 1; i < $#; i += 2 )); do
  n=$(( (i + 1) / 2 ))
  zpty -w -n z "\${argv[i]}"$'\\t'
  zpty -r -m z shown "*\${argv[i+1]}*"
  zpty -w -n z $'\\C-e\\C-u'
  zpty -w z "print -r -- DONE__\\"\${n}\\""
  zpty -r -m z out "*DONE__\${n}*"
  print -r -- "\${shown}\${out}"
  print -r -- '@@@'
done
zpty -d z
`;
  const out = execFileSync('zsh', ['-f', '-c', driver, 'zsh', ...cases.flatMap(({ line, shows }) => [line, shows])], { encoding: 'utf8', timeout: 30_000 });
  return out
    .replace(/\r/g, '')
    .replace(/\x1b\[[?0-9;]*[a-zA-Z]/g, '')
    .split('@@@\n')
    .slice(0, cases.length);
}

describe.skipIf(!installed('zsh'))('zsh', () => {
  it('completes in a real zsh: global options first, top-level options, groups, shells, choices', async () => {
    const path = await script('zsh');
    // Each line, what the driver waits to see after Tab, and what must be shown.
    const cases: Array<[string, string, RegExp[]]> = [
      ['delegate --profile work find-slot --d', '--duration', [/--debug\s+-- show stack traces/, /--duration\s+-- length of the slot/]],
      ['delegate --debug find-slot --d', '--duration', [/--duration\s+-- length of the slot/]],
      ['delegate login --profile work --de', '--device', [/--debug/, /--device/]],
      ['delegate --', '--version', [/--debug/, /--help/, /--profile/, /--version/]],
      ['delegate calendar ', 'remove', [/add\s+-- Add a calendar/, /list\s+-- List the calendars/, /remove\s+-- Remove a calendar/]],
      ['delegate grants ', 'revoke', [/list/, /show/, /revoke/]],
      ['delegate agents ', 'register', [/register/, /list/, /show/]],
      ['delegate token exchange --as helper --j', '--json', [/delegate token exchange --as helper --json/]],
      ['delegate completion ', 'fish', [/bash\s+fish\s+zsh/]],
      ['delegate completion z', 'zsh', [/delegate completion zsh/]],
      ['delegate mcp-config --client ', 'claude-desktop', [/claude-code\s+claude-desktop\s+json/]],
      ['delegate find-slot --tentative=', 'busy', [/busy\s+free/]],
      ['delegate find-slot --on-calendar-error s', 'skip', [/delegate find-slot --on-calendar-error skip/]],
      ['delegate serve --log-level ', 'silent', [/debug\s+error\s+fatal\s+info\s+silent\s+trace\s+warn/]],
    ];
    const shown = zshComplete(
      path,
      cases.map(([line, shows]) => ({ line, shows })),
    );
    cases.forEach(([line, , expected], i) => {
      for (const pattern of expected) expect(shown[i], line).toMatch(pattern);
    });
    // the script also passes zsh's syntax check
    expect(spawnSync('zsh', ['-n', path]).status).toBe(0);
  });

  // Found in review (regress21a): zsh never called _files, so these completed nothing.
  it('completes file names where a file is wanted, and nowhere else', async () => {
    const path = await script('zsh');
    const files = filesDir();
    const cases: Array<[string, string, RegExp[]]> = [
      [`delegate calendar add work ${files}/w`, 'work.ics', [/delegate calendar add work \S+\/files\/work\.ics/]],
      [`delegate token exchange --key ${files}/k`, 'keys/', [/--key \S+\/files\/keys\//]],
      // listed, a directory's name with its slash, a space quoted as it must be on the line
      [`delegate token exchange --subject-token-file ${files}/`, 'work.ics', [/keys\//, /my\\ key\.json/, /work\.ics/]],
      // (a line this long scrolls on the pseudo-terminal: its start is not on screen)
      [`delegate agents register x --key=${files}/w`, 'work.ics', [/\/files\/work\.ics/]],
    ];
    const shown = zshComplete(
      path,
      cases.map(([line, shows]) => ({ line, shows })),
    );
    cases.forEach(([line, , expected], i) => {
      for (const pattern of expected) expect(shown[i], line).toMatch(pattern);
    });
    // and nowhere else (a completion that shows nothing cannot be waited for on the terminal): these four values alone call _files
    const marked = (await readFile(path, 'utf8')).split('\n').filter((l) => l.includes('files=1'));
    expect(marked.map((l) => l.trim().split(')')[0])).toEqual([
      "('delegate token exchange|--subject-token-file'",
      "('delegate token exchange|--key'",
      "('delegate calendar add|#1'",
      "('delegate agents register|--key'",
    ]);
  });
});

/** fish's own completions of each line (`complete -C`), one list per line. */
function fishComplete(path: string, lines: string[]): string[][] {
  const body = lines.map((_, i) => `complete -C $argv[${i + 1}] | string replace -r '\\t.*' ''; echo @@@`).join('; ');
  const out = execFileSync('fish', ['--no-config', '-c', `source ${path}; ${body}`, ...lines], { encoding: 'utf8', timeout: 30_000 });
  return out
    .split('@@@\n')
    .slice(0, lines.length)
    .map((block) => block.split('\n').filter((w) => w !== ''));
}

describe.skipIf(!installed('fish'))('fish', () => {
  it('completes in fish: global options first, top-level options, groups, shells, choices', async () => {
    const path = await script('fish');
    const cases: Array<[string, string[]]> = [
      ['delegate --profile work find-slot --d', ['--debug', '--duration']],
      ['delegate --', ['--debug', '--help', '--profile', '--version']],
      ['delegate calendar ', ['add', 'list', 'remove']],
      ['delegate users ', ['add', 'list', 'remove', 'set-time-zone']],
      ['delegate token ', ['exchange']],
      ['delegate completion ', ['bash', 'fish', 'zsh']],
      ['delegate mcp-config --client ', ['claude-code', 'claude-desktop', 'json']],
      ['delegate find-slot --tentative ', ['busy', 'free']],
      ['delegate serve --log-level ', ['debug', 'error', 'fatal', 'info', 'silent', 'trace', 'warn']],
    ];
    const shown = fishComplete(
      path,
      cases.map(([line]) => line),
    );
    cases.forEach(([line, expected], i) => expect(shown[i]?.sort(), line).toEqual(expected));
  });

  // Found in review (regress21a): `complete -c delegate -f` kept file names out everywhere.
  it('completes file names where a file is wanted, and nowhere else', async () => {
    const path = await script('fish');
    const files = filesDir();
    const cases: Array<[string, string[]]> = [
      [`delegate calendar add work ${files}/w`, [`${files}/work.ics`]],
      [`delegate token exchange --key ${files}/k`, [`${files}/keys/`]],
      [`delegate token exchange --subject-token-file ${files}/`, [`${files}/keys/`, `${files}/my key.json`, `${files}/work.ics`]],
      [`delegate agents register x --key ${files}/m`, [`${files}/my key.json`]],
      [`delegate agents register x --key=${files}/w`, [`--key=${files}/work.ics`]],
      [`delegate token exchange --audience ${files}/w`, []],
      [`delegate calendar add ${files}/w`, []],
    ];
    const shown = fishComplete(
      path,
      cases.map(([line]) => line),
    );
    cases.forEach(([line, expected], i) => expect(shown[i]?.sort(), line).toEqual(expected));
  });
});
