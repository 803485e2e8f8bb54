// Run by `npm run build` after tsc. Makes dist/ the oclif root of the installed CLI (bin/run.js) with an
// oclif manifest beside it, so that running one command imports that command only, not all of them (and
// ssh2, execa, listr2… with them). The manifest lives in dist/ and nowhere else: bin/dev.js and the tests
// keep the repository as their root, which has none, so a manifest left stale by a change to src/ can
// never hide a command or run old code there. dist/ is rebuilt from scratch by every build.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const root = new URL('../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const dist = { name: pkg.name, version: pkg.version, type: pkg.type, private: true, files: ['.'], oclif: { ...pkg.oclif, commands: './commands' } };
writeFileSync(new URL('dist/package.json', root), `${JSON.stringify(dist, null, 2)}\n`);
const oclif = createRequire(import.meta.url).resolve('oclif/bin/run.js');
execFileSync(process.execPath, [oclif, 'manifest', 'dist'], { cwd: root, env: { ...process.env, OCLIF_SKIP_NEW_VERSION_CHECK: 'true' }, stdio: ['ignore', 'ignore', 'inherit'] });
