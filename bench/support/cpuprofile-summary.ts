// Reads V8 .cpuprofile files (as BENCH_CPU_PROF writes them) and prints where
// the time went: self time by function and by file or package and, with
// --part, a breakdown into named parts. Each sample counts once, for the part
// whose function is nearest the top of its stack (where the time was spent):
// a store read made during client authentication counts for the read, not
// for client authentication, if both are parts. A function written
// `caller>callee` matches callee called by caller only (`sqliteTransaction>run`:
// BEGIN and COMMIT, not the statements run inside the transaction). Samples in
// no part are "rest". With a file name ending in `-<N>-tokens.cpuprofile`, as
// the token benchmark writes them (or --per N), figures are µs per token.
//   npx tsx bench/support/cpuprofile-summary.ts [--top 40] [--per N] [--part name=fn1,fn2 ...] file.cpuprofile...
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
let top = 40;
let per: number | undefined;
const parts: Array<{ name: string; functions: Array<{ callee: string; caller?: string }> }> = [];
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--top') top = Number(args[++i]);
  else if (a === '--per') per = Number(args[++i]);
  else if (a === '--part') {
    const [name, fns] = args[++i]!.split('=');
    parts.push({
      name: name!,
      functions: fns!.split(',').map((f) => {
        const [caller, callee] = f.includes('>') ? f.split('>') : [undefined, f];
        return { callee: callee!, ...(caller ? { caller } : {}) };
      }),
    });
  } else files.push(a);
}

const selfByFunction = new Map<string, number>();
const selfByFile = new Map<string, number>();
const byPart = new Map<string, number>();
let total = 0;
let idle = 0;
let units = 0;

/** A file's short name: its package under node_modules, else its path from src/ or bench/, else node's internals. */
function fileOf(url: string): string {
  if (!url) return '(native or V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:src|bench|test)\/.*)$/.exec(url);
  if (own) return own[1]!;
  return url.startsWith('node:') ? url : url.replace(/^file:\/\//, '');
}

const add = (m: Map<string, number>, key: string, ms: number) => m.set(key, (m.get(key) ?? 0) + ms);

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  units += per ?? Number(/-(\d+)-tokens\.cpuprofile$/.exec(file)?.[1] ?? 0);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${fileOf(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000; // a sample stands for the time until the next one
    const node = byId.get(id)!;
    total += ms;
    if (node.callFrame.functionName === '(idle)') idle += ms;
    add(selfByFunction, label(node), ms);
    add(selfByFile, fileOf(node.callFrame.url), ms);
    if (parts.length === 0) return;
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame.functionName);
    const part = stack
      .map((fn, depth) => parts.find((p) => p.functions.some((f) => f.callee === fn && (f.caller === undefined || stack[depth + 1] === f.caller))))
      .find((p) => p !== undefined);
    add(byPart, part?.name ?? (node.callFrame.functionName === '(idle)' ? 'idle' : 'rest'), ms);
  });
}

const scale = units > 0 ? 1000 / units : 1;
const unit = units > 0 ? 'µs per token' : 'ms';
const show = (v: number) => (v * scale).toFixed(1).padStart(9);
console.log(`${files.length} profile(s), ${total.toFixed(0)} ms sampled${units > 0 ? ` for ${units} tokens` : ''}; not idle: ${show(total - idle).trim()} ${unit}`);
const table = (title: string, m: Map<string, number>, n: number) => {
  console.log(`\n${title} (${unit})`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${show(v)}  ${k}`);
};
if (parts.length > 0) table('by part', byPart, parts.length + 2);
table('self, by file or package', selfByFile, top);
table('self, by function', selfByFunction, top);
