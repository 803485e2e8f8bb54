// Run by `npm run build` after tsc: what the installed CLI (bin/run.js) needs beyond tsc's output, all of it
// in dist/, which every build recreates. Both spare each run start-up CPU (a cron probe's budget is 1 s):
// - dist/ as the CLI's oclif root, with an oclif manifest: oclif then imports only the command asked for,
//   not all of them (and ssh2, execa, listr2… with them). bin/dev.js and the tests keep the repository as
//   their root, which has no manifest, so a manifest left stale by a change to src/ can never hide a
//   command or run built code there.
// - the registry schema's validator as code (src/core/registry/registry.ts, PRECOMPILED_VALIDATOR): no ajv compile.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const dist = { name: pkg.name, version: pkg.version, type: pkg.type, private: true, files: ['.'], oclif: { ...pkg.oclif, commands: './commands' } };
writeFileSync(new URL('dist/package.json', root), `${JSON.stringify(dist, null, 2)}\n`);
const oclif = createRequire(import.meta.url).resolve('oclif/bin/run.js');
execFileSync(process.execPath, [oclif, 'manifest', 'dist'], {
  cwd: fileURLToPath(root),
  env: { ...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true' },
  stdio: ['ignore', 'ignore', 'inherit'],
});

const registry = await import(new URL('dist/core/registry/registry.js', root).href);
writeFileSync(registry.PRECOMPILED_VALIDATOR, registry.precompiledValidatorSource());
