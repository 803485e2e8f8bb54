/**
 * Child of report-memory.test.ts: counts the log files named on the command line as `report` does, then
 * prints its lines counted and its peak resident memory (VmHWM, from /proc/self/status) as JSON.
 */
import { readFile } from 'node:fs/promises';
import { countMerged } from '../../src/core/memoria/log-merge.js';
import { TrafficCounter } from '../../src/core/memoria/traffic.js';
import { logFileSource } from '../../src/adapters/log-files.js';

const files = process.argv.slice(2);
const counter = new TrafficCounter({ from: '2022-06-01', to: '2022-06-30' }, 'America/Mexico_City');
const rssBefore = process.memoryUsage().rss;
await countMerged(await Promise.all(files.map((f) => logFileSource(f))), counter);
const status = await readFile('/proc/self/status', 'utf8');
const hwmKb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
const r = counter.result();
process.stdout.write(JSON.stringify({ lines: r.lines, hits: r.hits, visitors: r.visitors, peakBytes: hwmKb * 1024, rssBefore }) + '\n');
