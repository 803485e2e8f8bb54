import { gatherStatus, type StatusReport } from '../core/publish/status.js';
import { StateStore } from '../core/records/state.js';
import { cutsSwitchedTo, headCaveat } from '../core/records/merged-journal.js';
import { createConnector } from '../adapters/difusor.js';
import { journalFlag, onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { formatBytes, localStamp, renderTable } from '../ui/render.js';
import { displayPath } from '../core/registry/registry.js';

export default class Status extends DifusionCommand {
  static override summary = 'One row per difusor: state, live cut, lag behind the newest cut, last result.';
  static override description =
    'Asks every difusor (concurrently, with a timeout) which cut `current` points to and which releases it ' +
    'holds; the lag is counted against the newest cut this host has published, the last result comes from ' +
    'the state directory, and so does what the last `probe` saw over HTTP. A difusor that does not answer is shown as unreachable with the reason. ' +
    "With --journal FILE (the other publication host's journal, copied here) the cuts its runs switched count as " +
    'published too, for the newest cut and the lag; an altered journal is refused (exit 6).';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --only ujed --json',
    '<%= config.bin %> <%= command.id %> --journal /var/lib/difusion/alterno/journal.jsonl',
  ];
  static override enableJsonFlag = true;
  static override flags = { registry: registryFlag, only: onlyFlag, journal: journalFlag };

  async run(): Promise<StatusReport> {
    const { flags } = await this.parse(Status);
    const registry = await this.requireRegistry(flags.registry);
    const targets = this.lookAt(registry, flags.only);
    const merged = await this.mergedJournal(registry.publication.state_dir, flags.journal ?? []);
    const connector = await createConnector(registry, targets, { rsyncAlongside: false });
    const state = new StateStore(registry.publication.state_dir);
    let report: StatusReport;
    try {
      report = await gatherStatus({
        registry,
        targets,
        connector,
        readRecord: (id) => state.readRecord(id),
        readProbe: (id) => state.readProbe(id),
        timeoutMs: registry.publication.ssh.connect_timeout_s * 1000 + 5000,
        ...(merged ? { alsoPublished: cutsSwitchedTo(merged.entries) } : {}),
      });
      if (merged) report.journals = merged.journals;
    } finally {
      await connector.dispose();
    }
    // The same caveat as `journal verify`: a copy's newest switches could have been removed unseen. On stderr under --json.
    for (const j of merged?.journals ?? []) {
      const caveat = headCaveat(j);
      if (caveat) this.say(`${displayPath(j.file)} (${j.host}): ${caveat}.`);
    }
    if (!this.jsonEnabled()) {
      const byBoth = report.journals ? ` (by the journals of ${report.journals.map((j) => j.host).join(' and ')})` : '';
      this.log(`newest published cut: ${report.newest ?? '(none yet)'}${byBoth}`);
      this.log(
        renderTable(
          ['difusor', 'state', 'live cut', 'lag', 'releases', 'free', 'last result', 'last probe', 'error'],
          report.difusores.map((r) => [
            r.id,
            r.state,
            r.notice ? `aviso ${r.notice}` : (r.live ?? '-'),
            r.lagCuts === undefined ? '-' : `${r.lagCuts} cuts / ${r.lagMinutes ?? '?'} min`,
            String(r.releases.length),
            r.freeKb === undefined ? '-' : formatBytes(r.freeKb * 1024),
            r.lastResult ? `${r.lastResult.result} ${r.lastResult.cut}` : '-',
            r.probe
              ? `${r.probe.ok ? 'ok' : `FAIL ${r.probe.kinds.join(',')}`} ${localStamp(new Date(r.probe.at), registry.publication.timezone).slice(5, 16)}`
              : '-',
            r.error ?? '',
          ]),
        ),
      );
    }
    return report;
  }

}
