import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * oclif imports every command at once when it loads, and jest's ESM linker can lose that race
 * ("request for 'node:fs' is not in cache"): the command is then "not found". Importing each command
 * one after the other first leaves them all in jest's module cache.
 */
export async function preloadCommands(dir = path.resolve('src/commands')): Promise<void> {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await preloadCommands(full);
    else if (entry.name.endsWith('.ts')) await import(pathToFileURL(full).href);
  }
}
