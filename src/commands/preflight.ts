import { Flags } from '@oclif/core';
import path from 'node:path';
import { cutDelta, preflight, type PreflightReport, type SpeedOptions } from '../core/publish/preflight.js';
import { resolveCut, selectTargets } from '../core/publish/publish-run.js';
import { scanCut } from '../core/publish/cut.js';
import { DEFAULT_LEASE_S, thisHost } from '../core/publish/lease.js';
import type { TakeoverOptions } from '../core/publish/takeover.js';
import { StateStore } from '../core/records/state.js';
import { cutLibrary } from '../core/publish/cut-library.js';
import { createConnector } from '../adapters/difusor.js';
import { httpGet } from '../adapters/http.js';
import { onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { renderTable } from '../ui/render.js';

export default class Preflight extends DifusionCommand {
  static override summary =
    'Readiness of each difusor: SSH with the pinned key, helper, rsync, write access, free disk, HTTP; and what this host would do there on takeover.';
  static override description =
    'Connects to every active difusor exactly as publish does (pinned host key, the same helper), and checks ' +
    'rsync 3.1 or later, write access under its path, free disk for a whole cut (the one given with --cut or ' +
    '--latest, twice its size to hold the staging beside the live release), and that its public URL answers. ' +
    'It also times a transfer of a few MB to every difusor at once (into .staging, removed at once) and, for the ' +
    'cut given, predicts when its delta against the cut before it would be live on each: a difusor that would ' +
    'take longer than one minute is not ready. Exit 3 when any difusor is not ready.\n\n' +
    'On takeover (the alternate site): for each difusor, whose lease is there (free, or held by which host and run, ' +
    'since when and for how long, on the difusor\'s clock), what it serves, and, with --cut or --latest, what a ' +
    'publish of that cut from this host (DIFUSION_HOST, or the hostname) would do there: nothing (up to date), the ' +
    'switch only, a new release (files and bytes to send, files linked), a repair, refused (a newer cut is live), or ' +
    'left alone (another host\'s run holds the lease; with --latest, a rollback holds it on an older cut, which a ' +
    'publish by name, as --cut says it, lifts). Nothing is written on a difusor (lease show and inspect), and none of ' +
    'it is a failure: a difusor held by the other host\'s live run is information, not a reason for exit 3.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --latest /srv/prep/cortes',
    '<%= config.bin %> <%= command.id %> --only ujed --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    cut: Flags.string({ description: 'size the disk check on this cut directory, and plan its publish by name on each difusor', helpValue: 'DIR', exclusive: ['latest'] }),
    latest: Flags.string({ description: 'size the disk check on the newest cut in DIR, and plan its publish (as cron\'s --latest) on each difusor', helpValue: 'DIR' }),
    'probe-mb': Flags.integer({ description: 'megabytes of the timed transfer to each difusor (0: skip it)', default: 4, min: 0, max: 64 }),
  };

  async run(): Promise<PreflightReport> {
    const { flags } = await this.parse(Preflight);
    const registry = await this.requireRegistry(flags.registry);
    let neededBytes = 0;
    let delta: { bytes: number; compressedBytes?: number } = { bytes: 0 };
    let targets;
    let takeover: TakeoverOptions;
    try {
      targets = selectTargets(registry, flags.only ?? []).targets;
      const { publication } = registry;
      const cutArg = flags.cut ?? flags.latest;
      let cutsDir: string | undefined;
      let cutToSend: TakeoverOptions['cut'];
      if (cutArg) {
        const { cut, cutDir } = await resolveCut(cutArg, Boolean(flags.latest));
        cutsDir = path.dirname(cutDir);
        const files = await scanCut(cutDir);
        // A new release may need a whole copy beside the live one (no file to share on first publish).
        neededBytes = 2 * files.reduce((n, f) => n + f.size, 0);
        const measured = await cutDelta(cutDir, publication.state_dir, { compressed: flags['probe-mb'] > 0 });
        delta = measured;
        cutToSend = { cut, manifest: measured.manifest, signed: publication.signing_key !== undefined, byName: !flags.latest };
      }
      const state = takeoverState(publication.state_dir, cutsDir);
      takeover = {
        host: thisHost(),
        leaseSeconds: publication.lease_s ?? DEFAULT_LEASE_S,
        timezone: publication.timezone,
        ...(cutToSend ? { cut: cutToSend } : {}),
        manifestHashes: (base, digest) => state.manifestHashes(base, digest),
      };
    } catch (error) {
      this.refuse(error);
    }
    const connector = await createConnector(registry, targets, { rsyncAlongside: false });
    let report: PreflightReport;
    try {
      const speed: SpeedOptions | undefined =
        flags['probe-mb'] > 0 ? { probeBytes: flags['probe-mb'] * 1024 * 1024, deltaBytes: delta.bytes, compressedDeltaBytes: delta.compressedBytes, limitSeconds: 60 } : undefined;
      report = await preflight(targets, { neededBytes, httpTimeoutMs: 5000, speed, takeover }, { connector, httpGet });
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
      this.logTakeover(report, takeover);
    }
    this.finish(report.exitCode);
    return report;
  }

  /** The takeover section: per difusor, its lease, what it serves, and what this host would send there. */
  private logTakeover(report: PreflightReport, takeover: TakeoverOptions): void {
    this.log('');
    this.log(`takeover (as this host, ${takeover.host}${takeover.cut ? `, publishing ${takeover.cut.cut}` : ''}):`);
    const width = Math.max(...report.difusores.map((r) => r.id.length));
    for (const r of report.difusores) {
      const pad = ' '.repeat(width + 2);
      const t = r.takeover;
      if (!t) {
        this.log(`  ${r.id.padEnd(width)}  not reached: see its checks above`);
        continue;
      }
      this.log(`  ${r.id.padEnd(width)}  lease: ${t.leaseDetail}`);
      this.log(`  ${pad}serves: ${t.serves}`);
      if (t.send) this.log(`  ${pad}would send: ${t.send.detail}`);
    }
  }
}

/**
 * The state this host keeps, read for the base releases' manifests, as publish reads it: a standby with an empty
 * state directory learns a base's manifest from its own copy of that cut in the cuts directory (where its digest is
 * the difusor's), so the files linked are those its publish would link.
 */
function takeoverState(stateDir: string, cutsDir: string | undefined): StateStore {
  const state = new StateStore(stateDir);
  return cutsDir ? new StateStore(stateDir, cutLibrary(cutsDir, { hashCacheFile: state.hashCacheFile() })) : state;
}
