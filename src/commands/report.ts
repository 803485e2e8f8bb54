import { Flags } from '@oclif/core';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readJournal } from '../core/records/journal.js';
import { headCaveat, type MergedJournal } from '../core/records/merged-journal.js';
import { displayPath } from '../core/registry/registry.js';
import type { Difusor, Registry } from '../core/registry/types.js';
import type { Clock } from '../core/clock-port.js';
import { buildReport, type MemoriaReport } from '../core/memoria/report.js';
import { dayNumber, type Period } from '../core/memoria/traffic.js';
import { formatLocal } from '../core/registry/window.js';
import { systemClock } from '../adapters/clock.js';
import { createConnector } from '../adapters/difusor.js';
import { reportLogs } from '../adapters/report-logs.js';
import { DifusionCommand } from '../ui/command.js';
import { journalFlag, registryFlag } from '../ui/flags.js';
import { formatBytes, renderTable } from '../ui/render.js';
import { renderDifusorCsv, renderReportHtml } from '../ui/report-html.js';
import { reportProgress } from '../ui/report-view.js';

export default class Report extends DifusionCommand {
  static override summary = 'Memoria técnica: each difusor\'s traffic (visits, pages, hits as AWStats counts them), incidents and charts.';
  static override description =
    'Pulls each difusor\'s access logs (registry access_log, rotated .gz included) read-only over SSH into the ' +
    'state directory, resuming a pull that was cut off and never pulling twice what is already there (local ' +
    'difusores are read in place). Counts the period [--from 00:00:00, --to 23:59:59] in the publication timezone ' +
    'exactly as AWStats 7.8 with its default configuration, and the baseline period when given, with the ratio ' +
    'election/baseline of daily averages. Incidents (failed publishes, cut-offs, probe failures, lag beyond one ' +
    'minute) come from the journal; with --journal FILE (the other publication host\'s journal, copied here) ' +
    'from both journals, verified and merged in time order, each incident and run with its host (an altered ' +
    'journal is refused, exit 6). Writes DIR/index.html (self-contained, printable), DIR/report.json and ' +
    'DIR/<id>.csv. Exit 3 when some difusores could not be reported (they are named), 1 when none could.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --from 2022-06-05 --to 2022-06-12 --out memoria/',
    '<%= config.bin %> <%= command.id %> --from 2022-06-05 --to 2022-06-12 --baseline-from 2022-05-01 --baseline-to 2022-05-28 --out memoria/',
    '<%= config.bin %> <%= command.id %> --from 2022-06-05 --to 2022-06-06 --only ujed --out /tmp/ujed --json',
    '<%= config.bin %> <%= command.id %> --from 2022-06-05 --to 2022-06-06 --journal /var/lib/difusion/alterno/journal.jsonl --out memoria/',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: Flags.string({ description: 'limit to this difusor id (repeatable); suspended difusores are reported too', multiple: true, helpValue: 'ID' }),
    from: Flags.string({ description: 'first day of the period (publication timezone)', helpValue: 'YYYY-MM-DD', required: true }),
    to: Flags.string({ description: 'last day of the period, included', helpValue: 'YYYY-MM-DD', required: true }),
    out: Flags.string({ description: 'directory for index.html, report.json and <id>.csv', helpValue: 'DIR', required: true }),
    'baseline-from': Flags.string({ description: 'first day of an ordinary period to compare with', helpValue: 'YYYY-MM-DD', dependsOn: ['baseline-to'] }),
    'baseline-to': Flags.string({ description: 'last day of the ordinary period, included', helpValue: 'YYYY-MM-DD', dependsOn: ['baseline-from'] }),
    journal: journalFlag,
  };

  async run(): Promise<MemoriaReport> {
    const { flags } = await this.parse(Report);
    const registry = await this.requireRegistry(flags.registry);
    const period = this.period(flags.from, flags.to, '--from', '--to');
    const baseline = flags['baseline-from'] ? this.period(flags['baseline-from'], flags['baseline-to'] as string, '--baseline-from', '--baseline-to') : undefined;
    const targets = this.reported(registry, flags.only ?? []);
    const { publication } = registry;
    // Before any log is pulled: a memoria is never built on an altered journal.
    const merged = await this.mergedJournal(publication.state_dir, flags.journal ?? []);
    const clock = systemClock(process.env, { timezone: publication.timezone });
    if (clock.fromEnv && !this.jsonEnabled()) this.logToStderr(`clock set by ${clock.setting}`);

    let report = await this.build(registry, targets, { period, baseline, merged, clock });
    if (merged) report = { ...report, journals: merged.journals };
    const caveats = (report.journals ?? []).flatMap((j) => {
      const caveat = headCaveat(j);
      return caveat ? [`${displayPath(j.file)} (${j.host}): ${caveat}.`] : [];
    });
    const out = path.resolve(flags.out);
    await writeReportFiles(out, report, publication.timezone);

    // Under --json report.json and the document carry it (journals[].head); the operator reads it on stderr.
    if (this.jsonEnabled()) for (const caveat of caveats) this.say(caveat);
    else this.show(report, caveats, out);
    this.finish(report.exitCode);
    return report;
  }

  /** The difusores --only names (every one by default); an unknown id is refused naming the known ones. */
  private reported(registry: Registry, only: string[]): Difusor[] {
    const unknown = only.filter((id) => !registry.difusores.some((d) => d.id === id));
    if (unknown.length > 0) {
      this.error(`unknown difusor ${unknown.map((id) => `"${id}"`).join(', ')} in --only`, {
        exit: 2,
        suggestions: [`known ids: ${registry.difusores.map((d) => d.id).join(', ')}`],
      });
    }
    return registry.difusores.filter((d) => only.length === 0 || only.includes(d.id));
  }

  /** Each difusor's logs pulled and counted, the journal's facts beside them. */
  private async build(
    registry: Registry,
    targets: Difusor[],
    how: { period: Period; baseline?: Period; merged?: MergedJournal; clock: Clock },
  ): Promise<MemoriaReport> {
    const { publication } = registry;
    const connector = await createConnector(registry, targets.filter((d) => d.access_log), { rsyncAlongside: false });
    const progress = reportProgress(process.stderr, { enabled: Boolean(process.stderr.isTTY) && !this.jsonEnabled() && !process.env.NO_COLOR });
    try {
      return await buildReport(
        { targets, timeZone: publication.timezone, period: how.period, baseline: how.baseline, concurrency: publication.concurrency },
        {
          logs: reportLogs(publication.state_dir, connector),
          journal: async () => how.merged?.entries ?? (await readJournal(publication.state_dir)),
          now: () => how.clock.now(),
          onProgress: progress.update,
        },
      );
    } finally {
      progress.done();
      await connector.dispose();
    }
  }

  private show(report: MemoriaReport, caveats: string[], out: string): void {
    this.log(
      renderTable(
        ['difusor', 'result', 'visits', 'visitors', 'pages', 'hits', 'bytes', 'robots', 'malformed', 'vs baseline', 'error'],
        report.difusores.map((d) => [
          d.id,
          d.result,
          String(d.visits),
          String(d.visitors),
          String(d.pages),
          String(d.hits),
          formatBytes(d.bytes),
          String(d.robots.hits),
          String(d.malformed),
          d.ratio?.visits === undefined ? '-' : d.ratio.visits === null ? 'n/a' : `${d.ratio.visits}x visits`,
          d.error ?? '',
        ]),
      ),
    );
    if (report.journals) {
      const from = report.journals.map((j) => `${j.own ? "this host's" : displayPath(j.file)} (${j.host}, ${j.entries} entries)`).join(' and ');
      this.log(`journals verified and merged in time order: ${from}`);
    }
    for (const caveat of caveats) this.log(caveat);
    this.log(`${report.incidents.length} incident(s) in the period; ${report.cuts.length} cut(s) went live.`);
    this.log(`written: ${displayPath(path.join(out, 'index.html'))}, report.json, ${report.difusores.filter((r) => r.result === 'ok').length} CSV file(s)`);
    for (const d of report.difusores.filter((r) => r.result === 'failed')) {
      this.logToStderr(`${d.id}: not reported: ${d.error}. Its logs pulled so far stay in the state directory; run the report again to resume.`);
    }
  }

  private period(from: string, to: string, fromFlag: string, toFlag: string): Period {
    for (const [value, flag] of [
      [from, fromFlag],
      [to, toFlag],
    ] as const) {
      try {
        dayNumber(value);
      } catch {
        this.error(`${flag} "${value}" is not a date YYYY-MM-DD`, { exit: 2, suggestions: ['e.g. 2022-06-05'] });
      }
    }
    if (dayNumber(to) < dayNumber(from)) this.error(`${toFlag} ${to} is before ${fromFlag} ${from}`, { exit: 2 });
    return { from, to };
  }
}

/** report.json, one CSV per difusor reported and the printable page, each renamed into place whole. */
async function writeReportFiles(out: string, report: MemoriaReport, timeZone: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const write = async (name: string, data: string): Promise<void> => {
    const tmp = path.join(out, `.${name}.${process.pid}.tmp`);
    await writeFile(tmp, data);
    await rename(tmp, path.join(out, name));
  };
  await write('report.json', JSON.stringify(report, null, 2) + '\n');
  for (const d of report.difusores.filter((r) => r.result === 'ok')) await write(`${d.id}.csv`, renderDifusorCsv(d));
  await write('index.html', renderReportHtml(report, { generatedLocal: formatLocal(new Date(report.generatedAt), timeZone) }));
}
