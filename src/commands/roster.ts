import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Flags } from '@oclif/core';
import type { RosterEntry } from '../core/enforcement/roster.js';
import { ProbeHistory } from '../core/records/probe-history.js';
import { foldRound, type BoardDifusor } from '../core/probe/board.js';
import { writeBoardDir } from '../core/probe/board-files.js';
import { registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { publicBoardFiles } from '../ui/board-html.js';
import { systemClock } from '../adapters/clock.js';

const ROSTER_TEMPLATE = new URL('../../templates/roster.html', import.meta.url);

export default class Roster extends DifusionCommand {
  static override summary = 'Write the public board of the official difusores: names, logos, links (a suspended one unlinked), and each one\'s freshness and history from the probe rounds.';
  static override description =
    'Writes DIR/index.html (Spanish, self-contained: CSS inline and every logo as a data: URI, refreshing itself), ' +
    'DIR/board.json (schema/board.schema.json), DIR/rounds.csv, DIR/rounds.jsonl (the probe rounds, each line ' +
    'chained to the one before by SHA-256), DIR/roster.json and DIR/logos/<id>.<ext>, from the registry and the ' +
    'probe history in the state directory. Each drawing\'s data is also written whole to DIR/data/<n>/ (the page links ' +
    'there, so page and data are always one round\'s; the last 3 kept). An active difusor links to its public_url; a suspended one stays listed, ' +
    'marked "Suspendido", without a link. Publish DIR on the institute\'s site; `probe --roster DIR` rewrites it ' +
    'after every round. Contacts nobody.';
  static override examples = ['<%= config.bin %> <%= command.id %> --out /srv/prep/sitio/difusores'];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    out: Flags.string({ description: 'directory to write the board into (index.html, board.json, rounds.csv, rounds.jsonl, roster.json, logos/, data/<n>/)', required: true, helpValue: 'DIR' }),
  };

  async run(): Promise<{ out: string; difusores: Array<RosterEntry & Pick<BoardDifusor, 'state' | 'cut' | 'since'>> }> {
    const { flags } = await this.parse(Roster);
    const registry = await this.requireRegistry(flags.registry);
    const clock = this.clockFor(registry, systemClock);
    const history = new ProbeHistory(registry.publication.state_dir, foldRound);
    let made;
    try {
      made = await publicBoardFiles({
        registry,
        summary: await history.summary(),
        at: clock.now(),
        rosterTemplate: await readFile(ROSTER_TEMPLATE, 'utf8'),
        readLogo: (file) => readFile(file),
      });
    } catch (error) {
      this.refuse(error);
    }
    const out = path.resolve(flags.out);
    await writeBoardDir(out, made.files, history);
    const entries = JSON.parse(made.files.roster?.text ?? '{"difusores":[]}') as { difusores: RosterEntry[] };
    const difusores = entries.difusores.map((e) => {
      const d = made.board.difusores.find((b) => b.id === e.id);
      return { ...e, state: d?.state ?? 'unchecked', cut: d?.cut ?? null, since: d?.since ?? null };
    });
    if (!this.jsonEnabled()) {
      const suspended = difusores.filter((e) => e.status === 'suspended').map((e) => e.id);
      this.log(`${path.join(out, 'index.html')}: ${difusores.length} difusores, ${made.board.checker.rounds} probe round(s)${suspended.length ? `, unlinked while suspended: ${suspended.join(', ')}` : ''}`);
    }
    return { out, difusores };
  }
}
