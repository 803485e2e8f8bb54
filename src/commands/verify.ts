import { Flags } from '@oclif/core';
import { verifyDifusores, type VerifyReport } from '../core/publish/verify.js';
import { StateStore } from '../core/records/state.js';
import { selectTargets } from '../core/publish/publish-run.js';
import { createConnector } from '../adapters/difusor.js';
import { onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { renderTable } from '../ui/render.js';

export default class Verify extends DifusionCommand {
  static override summary = 'Re-check the live release on each difusor against its manifest; name every file that differs.';
  static override description =
    'Without --full: the release\'s MANIFEST.sha256 must be the one this host published, and the release must ' +
    'hold exactly its files with their sizes. With --full, every file is also re-hashed with sha256sum on the ' +
    'difusor. Exit 6 when anything differs, 3 when a difusor could not be checked, 0 when all are whole.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --full --only ujed',
    '<%= config.bin %> <%= command.id %> --full --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    full: Flags.boolean({ description: 're-hash every file on the difusor (slower)' }),
  };

  async run(): Promise<VerifyReport> {
    const { flags } = await this.parse(Verify);
    const registry = await this.requireRegistry(flags.registry);
    let targets;
    try {
      targets = selectTargets(registry, flags.only ?? []).targets;
    } catch (error) {
      this.refuse(error);
    }
    const state = new StateStore(registry.publication.state_dir);
    const connector = await createConnector(registry, targets, { rsyncAlongside: false });
    let report: VerifyReport;
    try {
      report = await verifyDifusores(
        targets,
        { full: flags.full, concurrency: registry.publication.concurrency, sizesOf: (cut) => state.sizesOf(cut) },
        { connector, manifestOf: (cut) => state.manifestText(cut) },
      );
    } finally {
      await connector.dispose();
    }
    if (!this.jsonEnabled()) {
      this.log(
        renderTable(
          ['difusor', 'result', 'live cut', 'differences'],
          report.difusores.map((r) => [r.id, r.result, r.live ?? '-', r.error ?? String(r.differences.length)]),
        ),
      );
      for (const r of report.difusores) {
        for (const difference of r.differences) this.log(`${r.id}: ${difference}`);
      }
    }
    this.finish(report.exitCode);
    return report;
  }
}
