import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import type { Config } from '@oclif/core';
import type { Difusor } from '../../src/core/registry/types.js';
import type { DifusorOutcome } from '../../src/core/publish/publish.js';
import type { PublishRunResult } from '../../src/core/publish/publish-run.js';
import type { ProbeReport, ProbeRow } from '../../src/core/probe/probe.js';
import type { CutoffPlan, ReinstatePlan } from '../../src/core/enforcement/suspension.js';
import type { RollbackPlan } from '../../src/core/enforcement/rollback.js';
import { printable, shownLine, terminalText } from '../../src/core/shared/printable.js';
import { renderTable } from '../../src/ui/render.js';
import { liveView, plainView, renderPublishSummary } from '../../src/ui/publish-view.js';
import { probeLines, probeTable } from '../../src/ui/probe-view.js';
import { planLines, rollbackPlanLines } from '../../src/ui/suspension-view.js';
import { describeStateWriteFailure } from '../../src/ui/state-failure.js';
import { reportProgress } from '../../src/ui/report-view.js';
import { DifusionCommand } from '../../src/ui/command.js';
import { holdThere } from '../../src/core/publish/hold-marker.js';
import type { DifusorSession, HelperOutput } from '../../src/core/difusor-port.js';

// A difusor's admin writes what its helper and its web server answer. Whatever path those words take to the
// operator's terminal (an outcome's error, a probe's detail, a plan, a table cell, a command's error), none of
// these may arrive as the bytes a terminal acts on: a screen clear, an OSC 52 clipboard write, an 8-bit CSI, a
// right-to-left override.
const PIECES = {
  clear: '\x1b[2J',
  osc52: '\x1b]52;c;ZWNobyBwd25lZA==\x07',
  csi8: '\u009b31m',
  rlo: '\u202eevil',
};
const CLEAR_LINE = '\r\x1b[K';
const HOSTILE = `x ${Object.values(PIECES).join(' ')} y`;

/** Any control but the newline, DEL, C1, and the invisible and bidi marks: none may be written raw. */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/;

function expectSafe(text: string): void {
  expect(text).not.toMatch(RAW);
  // What was sent is still shown, escaped.
  expect(text).toContain('\\u001b[2J');
  expect(text).toContain('\\u001b]52;c;ZWNobyBwd25lZA==\\u0007');
  expect(text).toContain('\\u009b31m');
  expect(text).toContain('\\u202eevil');
}

const difusor = { id: 'ujed', name: 'UJED', public_url: 'https://prep.ujed.mx/' } as Difusor;

function outcome(over: Partial<DifusorOutcome>): DifusorOutcome {
  return { id: 'ujed', name: 'UJED', result: 'failed', cut: '20240602_2100', filesToSend: 0, bytesToSend: 0, filesLinked: 0, filesSent: 0, bytesSent: 0, seconds: 1, ...over };
}

function probeRow(over: Partial<ProbeRow>): ProbeRow {
  return { id: 'ujed', name: 'UJED', registryStatus: 'active', ok: false, kinds: ['differs'], filesChecked: 3, differing: [], bytes: 0, totalMs: 5, warnings: [], ...over };
}

/** Everything written to process.stdout and process.stderr while fn runs. */
async function captured(fn: () => unknown): Promise<string> {
  const written: string[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const keep = (chunk: unknown): boolean => {
    written.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return true;
  };
  // oclif writes through console.log and console.error, which jest takes over: both are caught here.
  const { log, error } = console;
  const line = (...args: unknown[]): void => void keep(`${format(...args)}\n`);
  process.stdout.write = keep as typeof process.stdout.write;
  process.stderr.write = keep as typeof process.stderr.write;
  console.log = line;
  console.error = line;
  try {
    await fn();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    console.log = log;
    console.error = error;
  }
  return written.join('');
}

describe('the escaping itself', () => {
  it('terminalText escapes every control but the newline, and is idempotent', () => {
    const once = terminalText(`${HOSTILE}\nsecond\tline\r`);
    expectSafe(once);
    expect(once.split('\n')).toHaveLength(2);
    expect(once).toContain('second\\u0009line\\u000d');
    expect(terminalText(once)).toBe(once);
  });

  it('printable escapes the newline too; shownLine quotes and cuts at 200 characters', () => {
    expect(printable('a\nb\u009b')).toBe('a\\u000ab\\u009b');
    expect(shownLine(`\u202e${'z'.repeat(300)}`)).toBe(`"\\u202e${'z'.repeat(199)}" (and 101 more characters)`);
  });
});

describe('every renderer escapes what a difusor wrote', () => {
  it('a table cell (escaped before the columns are measured)', () => {
    const table = renderTable(['difusor', 'error'], [['ujed', HOSTILE], ['itvg', 'ok']]);
    expectSafe(table);
    expect(table.split('\n')).toHaveLength(4);
  });

  it('the publish summary: an outcome\'s error, a skipped reason, a refusal', () => {
    const result = {
      run: 'r1', mode: 'normal', cut: '20240602_2100', dryRun: false, exitCode: 3, targets: ['ujed'],
      outcomes: [outcome({ error: HOSTILE, failedPhase: 'verifying', previous: '20240602_2000' })],
      skipped: [{ id: 'itvg', reason: HOSTILE }],
    } as unknown as PublishRunResult;
    expectSafe(renderPublishSummary(result));
    expectSafe(renderPublishSummary({ ...result, dryRun: true, wouldRefuse: HOSTILE }));
  });

  it('the plain publish view (cron): a phase\'s detail', () => {
    const lines: string[] = [];
    const view = plainView((l) => lines.push(l), 'America/Mexico_City', () => new Date(0));
    view.observer.phase('ujed', 'failed', HOSTILE);
    expectSafe(lines.join('\n'));
  });

  it('the live publish view (listr2): a phase\'s detail in the title and a failure', async () => {
    const output = await captured(async () => {
      const view = liveView();
      view.start([{ id: 'ujed' }, { id: 'itvg' }] as Difusor[]);
      view.observer.phase('ujed', 'verifying', HOSTILE);
      view.observer.phase('ujed', 'live');
      view.observer.phase('itvg', 'failed', HOSTILE);
      await view.finish();
    });
    for (const piece of Object.values(PIECES)) expect(output).not.toContain(piece);
    expect(output).toContain('\\u001b[2J');
  });

  it('the probe\'s table and its cron lines: error, differing files, warnings, the cut seen', () => {
    const report: ProbeReport = {
      at: '2024-06-03T03:00:00Z', maxLagSeconds: 600, full: false, exitCode: 6, newest: '20240602_2100',
      difusores: [probeRow({ error: HOSTILE, differing: [`${HOSTILE}: differs`], warnings: [HOSTILE], cut: HOSTILE })],
    };
    expectSafe(probeTable(report, 'America/Mexico_City'));
    expectSafe(probeLines(report, 'America/Mexico_City').join('\n'));
  });

  it('the plans an operator confirms: cutoff, reinstate, rollback', () => {
    const unreachable = { releases: [], error: HOSTILE };
    const cutoff: CutoffPlan = { action: 'cutoff', difusor, reason: HOSTILE, serving: unreachable, local: '2024-06-02 21:00', registryFile: 'registry.yaml' };
    const reinstate: ReinstatePlan = { action: 'reinstate', difusor, serving: unreachable, cut: '20240602_2100', registryFile: 'registry.yaml' };
    const rollback: RollbackPlan = {
      action: 'rollback', to: '20240602_2000', rows: [{ difusor, serving: unreachable, action: 'unreachable' }], skipped: [{ id: 'itvg', reason: HOSTILE }],
    };
    expectSafe(planLines(cutoff).join('\n'));
    expectSafe(planLines(reinstate).join('\n'));
    expectSafe(rollbackPlanLines(rollback).join('\n'));
  });

  it('a state directory that could not be written', async () => {
    const error = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC', syscall: 'write', path: HOSTILE }) as NodeJS.ErrnoException;
    const { message } = await describeStateWriteFailure(error, mkdtempSync(path.join(tmpdir(), 'terminal-safe-')), { live: [HOSTILE], notLive: [], nothingSent: false });
    expectSafe(message);
  });

  it('the report\'s progress line (its own clear-line sequence aside)', () => {
    const writes: string[] = [];
    const stream = { columns: 400, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const progress = reportProgress(stream, { enabled: true });
    progress.update(HOSTILE, { phase: 'pulling' });
    progress.done();
    const drawn = writes.map((w) => (w.startsWith(CLEAR_LINE) ? w.slice(CLEAR_LINE.length) : w)).join('');
    expectSafe(drawn);
  });
});

class Talk extends DifusionCommand {
  static override id = 'talk';
  static override enableJsonFlag = true;
  async run(): Promise<void> {}
  say_(line: string): void {
    this.say(line);
  }
  json(value: unknown): void {
    this.logJson(value);
  }
  async fail(error: unknown): Promise<unknown> {
    return this.catch(error as never);
  }
}

const config = { bin: 'difusion', theme: undefined } as unknown as Config;

describe('whatever a command prints passes through one rule', () => {
  it('log, logToStderr, warn, and say (to stderr under --json)', async () => {
    const talk = new Talk([], config);
    expectSafe(await captured(() => talk.log(`error: ${HOSTILE}`)));
    expectSafe(await captured(() => talk.log('%s said %s', 'ujed', HOSTILE)));
    expectSafe(await captured(() => talk.logToStderr(HOSTILE)));
    expectSafe(await captured(() => talk.warn(HOSTILE)));
    expectSafe(await captured(() => talk.warn(new Error(HOSTILE))));
    expectSafe(await captured(() => new Talk(['--json'], config).say_(HOSTILE)));
  });

  it('error: the message and the suggestions it ends with', () => {
    const talk = new Talk([], config);
    let thrown: (Error & { suggestions?: string[] }) | undefined;
    try {
      talk.error(HOSTILE, { exit: 3, suggestions: [HOSTILE] });
    } catch (error) {
      thrown = error as Error & { suggestions?: string[] };
    }
    expect(thrown).toBeDefined();
    expectSafe(thrown?.message ?? '');
    expectSafe(thrown?.suggestions?.join('\n') ?? '');
  });

  it('an error of the core the command ends with: its message and its stack', async () => {
    const error = new Error(HOSTILE);
    await expect(new Talk([], config).fail(error)).rejects.toBe(error);
    // oclif's catch set the process's exit code, as it does for a command that ends in an error.
    expect(process.exitCode).toBe(1);
    process.exitCode = undefined;
    expectSafe(error.message);
    expectSafe(error.stack ?? '');
  });

  it('--json: the same JSON value, with no raw C1 control or bidi mark in the document', async () => {
    const value = { error: HOSTILE };
    const output = await captured(() => new Talk(['--json'], config).json(value));
    expect(output).not.toMatch(RAW);
    expect(JSON.parse(output)).toEqual(value);
  });
});

describe('where a difusor\'s words enter an outcome and the journal', () => {
  const answering = (out: HelperOutput | Error): DifusorSession =>
    ({ helper: async () => { if (out instanceof Error) throw out; return out; } }) as unknown as DifusorSession;
  const claim = { host: 'primario', run: 'r1' };

  it('a hold that failed: the helper\'s last lines, escaped, 200 characters each', async () => {
    const why = await holdThere(answering({ code: 1, stdout: '', stderr: `first\n${HOSTILE}\n${'z'.repeat(500)}\n` }), '20240602_2100', claim);
    expect(why).not.toMatch(RAW);
    expect(why).toBe(`hold failed (exit 1): ${printable(HOSTILE)} | ${'z'.repeat(200)}`);
  });

  it('a hold answered with something else: the line shown quoted and escaped', async () => {
    const why = await holdThere(answering({ code: 0, stdout: `ok\n${HOSTILE}\n`, stderr: '' }), '20240602_2100', claim);
    expect(why).toBe(`the difusor answered: ${shownLine(HOSTILE)}`);
    expectSafe(why ?? '');
  });

  it('a hold whose session failed: the error escaped', async () => {
    const why = await holdThere(answering(new Error(HOSTILE)), '20240602_2100', claim);
    expectSafe(why ?? '');
  });
});
