import { readFile, writeFile } from 'node:fs/promises';
import { Args, Flags } from '@oclif/core';
import { OnboardError, formatOnboarding, parsePublicKeyLine, type Onboarding } from '../core/registry/onboard.js';
import { helperScript } from '../adapters/difusor.js';
import { registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';

const VHOST_TEMPLATE = new URL('../../templates/apache-vhost.conf', import.meta.url);

export default class Onboard extends DifusionCommand {
  static override summary = "What a difusor's admin must install: restricted authorized_keys line, helper, Apache vhost.";
  static override description =
    'Prints, for one difusor of the registry, the authorized_keys line that lets the institute\'s key run ' +
    'only the difusion helper on its path (with from= when the registry sets `from`), how to install the ' +
    'helper, the Apache vhost filled in for its public_url and path, and the registry fields to set once ' +
    'the admin is done. The public key is read from `<identity_file>.pub`. Changes nothing anywhere.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> ujed',
    '<%= config.bin %> <%= command.id %> ujed --helper-out /tmp/difusion-helper',
    '<%= config.bin %> <%= command.id %> ujed --json',
  ];
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: 'difusor id', required: true }) };
  static override flags = {
    registry: registryFlag,
    'helper-out': Flags.string({ description: 'also write the helper script to FILE, to send to the admin', helpValue: 'FILE' }),
  };

  async run(): Promise<Onboarding & { helperOut?: string }> {
    const { args, flags } = await this.parse(Onboard);
    const registry = await this.requireRegistry(flags.registry);
    const difusor = registry.difusores.find((d) => d.id === args.id);
    if (!difusor) {
      this.error(`no difusor "${args.id}" in ${registry.file}`, { exit: 2, suggestions: [`known ids: ${registry.difusores.map((d) => d.id).join(', ')}`] });
    }
    if (difusor.transport === 'local') this.error(`difusor ${difusor.id} is transport: local: there is no remote account to onboard`, { exit: 2 });
    const identity = registry.publication.ssh.identity_file;
    if (!identity) this.error('publication.ssh.identity_file is not set: onboard prints its public key (<identity_file>.pub)', { exit: 2 });
    const pubFile = `${identity}.pub`;
    let onboarding: Onboarding;
    try {
      const pubText = await readFile(pubFile, 'utf8').catch(() => {
        throw new OnboardError(`public key ${pubFile} cannot be read; recreate it with: ssh-keygen -y -f ${identity} > ${pubFile}`);
      });
      onboarding = formatOnboarding({
        difusor,
        publicKey: parsePublicKeyLine(pubText, pubFile),
        vhostTemplate: await readFile(VHOST_TEMPLATE, 'utf8'),
        helperFile: flags['helper-out'] ? 'difusion-helper' : undefined,
      });
    } catch (error) {
      if (error instanceof OnboardError) this.error(error.message, { exit: 2 });
      throw error;
    }
    if (flags['helper-out']) await writeFile(flags['helper-out'], helperScript(), { mode: 0o644 });

    if (!this.jsonEnabled()) {
      this.log(`# Onboarding ${difusor.id} (${difusor.name}): send this to its admin.\n`);
      this.log(`## 1. authorized_keys of ${difusor.user ?? 'the account'}@${difusor.host}: this one line (the key can then only run the helper on ${difusor.path})\n`);
      this.log(onboarding.authorizedKeys);
      this.log(`\n## 2. The helper (${flags['helper-out'] ? `written to ${flags['helper-out']}` : 'write it with --helper-out FILE'}), installed as root:\n`);
      for (const line of onboarding.helperInstall) this.log(line);
      this.log('\n## 3. Apache vhost (e.g. /etc/httpd/conf.d/prep.conf), then: apachectl configtest && apachectl graceful\n');
      this.log(onboarding.vhost);
      this.log(`## 4. In the registry, for ${difusor.id}:\n`);
      for (const line of onboarding.registryFields) this.log(`  ${line}`);
      for (const note of onboarding.notes) this.log(`\nnote: ${note}`);
    }
    return { ...onboarding, helperOut: flags['helper-out'] };
  }
}
