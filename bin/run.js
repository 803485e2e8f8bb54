#!/usr/bin/env node
import { execute } from '@oclif/core';

// dist/ is the installed CLI's oclif root (scripts/build-dist.mjs): its manifest lets oclif import only
// the command asked for.
await execute({ dir: new URL('../dist/', import.meta.url).href });
