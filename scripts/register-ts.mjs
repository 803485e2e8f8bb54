// Lets `node --import ./scripts/register-ts.mjs file.ts` run TypeScript (the bench, one-off scripts).
// tsconfig.json includes only src/; tsconfig.test.json also covers bench/, scripts/ and test/, and
// inherits the ts-node block (esm, transpileOnly): nothing is type-checked at run time.
import { register } from 'node:module';
import process from 'node:process';
import { URL, fileURLToPath, pathToFileURL } from 'node:url';

process.env.TS_NODE_PROJECT ??= fileURLToPath(new URL('../tsconfig.test.json', import.meta.url));
process.env.TS_NODE_TRANSPILE_ONLY ??= 'true';
register('ts-node/esm', pathToFileURL('./'));
