import type { Command } from '@oclif/core';
import { displayPath, formatProblem, loadRegistry } from '../core/registry.js';
import type { Registry } from '../core/types.js';

/** Loads the registry or ends the command with every problem listed and exit 2. */
export async function requireRegistry(cmd: Command, file: string): Promise<Registry> {
  const result = await loadRegistry(file);
  if (result.ok) return result.registry;
  for (const problem of result.problems) process.stderr.write(`${formatProblem(problem)}\n`);
  cmd.error(`${displayPath(file)} is invalid (${result.problems.length} problem(s)); run \`difusion validate\``, { exit: 2 });
}
