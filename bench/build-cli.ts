import { execFile } from 'node:child_process';
import { cp, mkdir, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

/**
 * The CLI as `npm run build` makes it, in `<dir>/pkg`: a bench measures the product as shipped without
 * deleting the checkout's dist/ under anyone else's feet. Returns the path of its bin/run.js.
 */
export async function buildCli(dir: string, log: (line: string) => void): Promise<string> {
  const pkg = path.join(dir, 'pkg');
  await rm(pkg, { recursive: true, force: true });
  await mkdir(path.join(pkg, 'scripts'), { recursive: true });
  for (const part of ['package.json', 'bin', 'templates', 'schema']) await cp(path.join(ROOT, part), path.join(pkg, part), { recursive: true });
  await cp(path.join(ROOT, 'scripts', 'build-dist.mjs'), path.join(pkg, 'scripts', 'build-dist.mjs'));
  await symlink(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
  try {
    await exec(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json'), '--outDir', path.join(pkg, 'dist')], { maxBuffer: 16 << 20 });
  } catch (error) {
    // A type error elsewhere in a shared checkout still emits; only a missing CLI stops the bench.
    log(`tsc: ${String((error as { stdout?: string }).stdout ?? error).split('\n').slice(0, 3).join(' | ')}`);
  }
  await exec(process.execPath, [path.join(pkg, 'scripts', 'build-dist.mjs')], { cwd: pkg });
  return path.join(pkg, 'bin', 'run.js');
}
