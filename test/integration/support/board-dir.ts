import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { verifyRoundsLog } from '../../../src/core/records/probe-history.js';
import type { Board } from '../../../src/core/probe/board.js';
import { boardValidator } from '../../support/board-check.js';

export interface BoardDirVerdict {
  /** What a visitor or a program could fetch that is not whole, or not of one round; empty when all is well. */
  problems: string[];
  /** Names starting with a dot: a killed writer's temporaries, removed by the next write. */
  leftovers: string[];
  /** The round directory the page links to, e.g. "data/4". */
  pageData?: string;
  /** The round count the page shows. */
  pageRounds?: number;
}

async function filesUnder(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const name = path.join(rel, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(dir, name)));
    else out.push(name);
  }
  return out;
}

/**
 * Every file of a board directory as a visitor gets it: each board.json valid against its schema, each log
 * chained, each CSV whole lines, each page complete (ends with </html>) with every local link resolving; and
 * the page's data of the same round as the page.
 */
export async function checkBoardDir(dir: string): Promise<BoardDirVerdict> {
  const validate = boardValidator();
  const verdict: BoardDirVerdict = { problems: [], leftovers: [] };
  for (const rel of await filesUnder(dir)) {
    if (rel.split(path.sep).some((part) => part.startsWith('.'))) {
      verdict.leftovers.push(rel);
      continue;
    }
    const text = await readFile(path.join(dir, rel), 'utf8');
    const base = path.basename(rel);
    try {
      if (base === 'board.json') {
        if (!validate(JSON.parse(text))) verdict.problems.push(`${rel}: ${JSON.stringify(validate.errors)}`);
      } else if (base.endsWith('.json')) {
        JSON.parse(text);
      } else if (base.endsWith('.jsonl')) {
        const log = verifyRoundsLog(text);
        if (!log.ok) verdict.problems.push(`${rel}: the chain does not verify: ${JSON.stringify(log)}`);
      } else if (base.endsWith('.csv')) {
        const lines = text.split('\n');
        if (lines.pop() !== '') verdict.problems.push(`${rel}: does not end with a whole line`);
        const width = lines[0]?.split(',').length;
        const torn = lines.findIndex((l) => l.split(',').length !== width);
        if (torn >= 0) verdict.problems.push(`${rel}: line ${torn + 1} has not the header's ${width} fields`);
      } else if (base.endsWith('.html')) {
        if (!text.trimEnd().endsWith('</html>')) verdict.problems.push(`${rel}: does not end with </html>`);
        for (const [, href] of text.matchAll(/href="([^"#]+)"/g)) {
          if (/^[a-z]+:/i.test(href as string)) continue;
          if (!existsSync(path.join(dir, path.dirname(rel), href as string))) verdict.problems.push(`${rel}: links to ${href}, which is missing`);
        }
        if (rel === 'index.html') {
          verdict.pageData = /href="(data\/\d+)\/board\.json"/.exec(text)?.[1];
          verdict.pageRounds = Number(/: (\d+), de ellas \d+ en duda/.exec(text)?.[1]);
        }
      }
    } catch (error) {
      verdict.problems.push(`${rel}: ${(error as Error).message}`);
    }
  }
  if (verdict.pageData === undefined) {
    verdict.problems.push('index.html: no link to a round\'s data/<n>/board.json');
  } else if (existsSync(path.join(dir, verdict.pageData, 'board.json'))) {
    const data = JSON.parse(await readFile(path.join(dir, verdict.pageData, 'board.json'), 'utf8')) as Board;
    if (data.checker.rounds !== verdict.pageRounds) verdict.problems.push(`index.html shows ${verdict.pageRounds} rounds, its ${verdict.pageData}/board.json ${data.checker.rounds}`);
  }
  return verdict;
}
