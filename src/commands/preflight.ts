import { Flags } from '@oclif/core';
import { cutDelta, preflight, type PreflightReport, type SpeedOptions } from '../core/publish/preflight.js';
import { resolveCut, selectTargets } from '../core/publish/publish-run.js';
import { scanCut } from '../core/publish/cut.js';
import { createConnector } from '../adapters/difusor.js';
import { httpGet } from '../adapters/http.js';
import { onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { renderTable } from '../ui/render.js';

export default class Preflight extends DifusionCommand {
  static override summary = 'Readiness of each difusor: SSH with the pinned key, helper, rsync, write access, free disk, HTTP.';
  static override description =
    'Connects to every active difusor exactly as publish does (pinned host key, the same helper), and checks ' +
    'rsync 3.1 or later, write access under its path, free disk for a whole cut (the one given with --cut or ' +
    '--latest, twice its size to hold the staging beside the live release), and that its public URL answers. ' +
    'It also times a transfer of a few MB to every difusor at once (into .staging, removed at once) and, for the ' +
    'cut given, predicts when its delta against the cut before it would be live on each: a difusor that would ' +
    'take longer than one minute is not ready. Exit 3 when any difusor is not ready.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --latest /srv/prep/cortes',
    '<%= config.bin %> <%= command.id %> --only ujed --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    cut: Flags.string({ description: 'size the disk check on this cut directory', helpValue: 'DIR', exclusive: ['latest'] }),
    latest: Flags.string({ description: 'size the disk check on the newest cut in DIR', helpValue: 'DIR' }),
    'probe-mb': Flags.integer({ description: 'megabytes of the timed transfer to each difusor (0: skip it)', default: 4, min: 0, max: 64 }),
  };

  async run(): Promise<PreflightReport> {
    const { flags } = await this.parse(Preflight);
    const registry = await this.requireRegistry(flags.registry);
    let neededBytes = 0;
    let delta: { bytes: number; compressedBytes?: number } = { bytes: 0 };
    let targets;
    try {
      targets = selectTargets(registry, flags.only ?? []).targets;
      const cutArg = flags.cut ?? flags.latest;
      if (cutArg) {
        const { cutDir } = await resolveCut(cutArg, Boolean(flags.latest));
        const files = await scanCut(cutDir);
        // A new release may need a whole copy beside the live one (no file to share on first publish).
        neededBytes = 2 * files.reduce((n, f) => n + f.size, 0);
        delta = await cutDelta(cutDir, registry.publication.state_dir, { compressed: flags['probe-mb'] > 0 });
      }
    } catch (error) {
      this.refuse(error);
    }
    const connector = await createConnector(registry, targets, { rsyncAlongside: false });
    let report: PreflightReport;
    try {
      const speed: SpeedOptions | undefined =
        flags['probe-mb'] > 0 ? { probeBytes: flags['probe-mb'] * 1024 * 1024, deltaBytes: delta.bytes, compressedDeltaBytes: delta.compressedBytes, limitSeconds: 60 } : undefined;
      report = await preflight(targets, { neededBytes, httpTimeoutMs: 5000, speed }, { connector, httpGet });
    } finally {
      await connector.dispose();
    }
    if (!this.jsonEnabled()) {
      const names = ['ssh', 'helper', 'rsync', 'write', 'disk', 'http', 'speed'] as const;
      this.log(
        renderTable(
          ['difusor', 'ready', ...names],
          report.difusores.map((r) => [
            r.id,
            r.ready ? 'yes' : 'NO',
            ...names.map((n) => {
              const c = r.checks.find((x) => x.name === n);
              return c ? (c.ok ? 'ok' : 'FAIL') : '-';
            }),
          ]),
        ),
      );
      for (const r of report.difusores) {
        for (const c of r.checks.filter((x) => !x.ok)) this.log(`${r.id}: ${c.name}: ${c.detail}`);
      }
      for (const r of report.difusores) {
        const speed = r.checks.find((c) => c.name === 'speed' && c.ok);
        if (speed) this.log(`${r.id}: speed: ${speed.detail}`);
      }
    }
    this.finish(report.exitCode);
    return report;
  }
}
