// The CLI as one minified ES module, dist/bundle/delegate.mjs, which
// bin/delegate loads: Node then reads and compiles one file for the fast path
// (find-slot with a cached token) instead of some five hundred modules. What
// the commands import lazily (the servers, the sign-in machinery, every
// command's module) stays lazy: esbuild splits each dynamic import() into its
// own chunk under dist/bundle/chunks/. Packages are bundled only when the fast
// path needs them (the MCP SDK with zod and ajv, commander); the others stay
// in node_modules and are imported from there when needed: better-sqlite3 is
// native, pino and open load files of their own at run time, and fastify, jose
// and the rest gain nothing from it. dist/bundle/meta.json (esbuild's
// metafile) says which sources each output file holds, for the tests.
// Run by `npm run build` after tsc, which typechecks and emits dist/ for the tests.
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
const bundled = new Set(['@modelcontextprotocol/sdk', 'commander', 'zod']);
const external = Object.keys(pkg.dependencies).filter((name) => !bundled.has(name));
const outdir = `${root}dist/bundle`;

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { delegate: 'src/cli/main.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // Bundled CommonJS packages (commander, ajv) call require() for Node's own modules.
  banner: { js: "import{createRequire as __delegateRequire}from'node:module';const require=__delegateRequire(import.meta.url);" },
  external: external.flatMap((name) => [name, `${name}/*`]),
  metafile: true,
  legalComments: 'none',
  // Maps for --debug's stack traces only: bin/delegate turns Node's source maps on under --debug, before the bundle
  // loads, and otherwise Node never reads them (a comment at each file's end). Positions and names, not the sources.
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
});
writeFileSync(`${outdir}/meta.json`, JSON.stringify(result.metafile));
