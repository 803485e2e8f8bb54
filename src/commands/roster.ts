import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Flags } from '@oclif/core';
import { buildRoster, type RosterEntry } from '../core/enforcement/roster.js';
import { registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { systemClock } from '../adapters/clock.js';

const ROSTER_TEMPLATE = new URL('../../templates/roster.html', import.meta.url);

async function writeAtomically(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export default class Roster extends DifusionCommand {
  static override summary = 'Write the public page listing the official difusores (names, logos, links; a suspended one unlinked).';
  static override description =
    'Writes DIR/index.html (Spanish, self-contained: CSS inline and every logo as a data: URI), DIR/roster.json ' +
    'and DIR/logos/<id>.<ext> from the registry. An active difusor links to its public_url; a suspended one stays ' +
    'listed, marked "Suspendido", without a link. Publish DIR on the institute\'s site. Contacts nobody.';
  static override examples = ['<%= config.bin %> <%= command.id %> --out /srv/prep/sitio/difusores'];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    out: Flags.string({ description: 'directory to write index.html, roster.json and logos/ into', required: true, helpValue: 'DIR' }),
  };

  async run(): Promise<{ out: string; difusores: RosterEntry[] }> {
    const { flags } = await this.parse(Roster);
    const registry = await this.requireRegistry(flags.registry);
    const clock = this.clockFor(registry, systemClock);
    let roster;
    try {
      roster = await buildRoster({ registry, template: await readFile(ROSTER_TEMPLATE, 'utf8'), at: clock.now(), readLogo: (file) => readFile(file) });
    } catch (error) {
      this.refuse(error);
    }
    const out = path.resolve(flags.out);
    await mkdir(path.join(out, 'logos'), { recursive: true });
    for (const [rel, bytes] of roster.logos) await writeAtomically(path.join(out, rel), bytes);
    await writeAtomically(path.join(out, 'roster.json'), roster.json);
    await writeAtomically(path.join(out, 'index.html'), roster.html);
    if (!this.jsonEnabled()) {
      const suspended = roster.entries.filter((e) => e.status === 'suspended').map((e) => e.id);
      this.log(`${path.join(out, 'index.html')}: ${roster.entries.length} difusores${suspended.length ? `, unlinked while suspended: ${suspended.join(', ')}` : ''}`);
    }
    return { out, difusores: roster.entries };
  }
}
