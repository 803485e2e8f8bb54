import { Flags } from '@oclif/core';
import { DifusionCommand } from '../../ui/command.js';
import { SigningKeyError, opensslVerifyCommand, writeKeyPair } from '../../core/publish/signing.js';

export default class KeysGenerate extends DifusionCommand {
  static override summary = 'An Ed25519 key pair for signing manifests (PEM: PKCS#8 private, SPKI public).';
  static override description =
    'Writes DIR/manifest.key (mode 0600, never overwritten) and DIR/manifest.pub (0644). Set ' +
    '`publication.signing_key` to the private key and every release gets MANIFEST.sha256.sig; publish ' +
    'manifest.pub on the institute\'s site so anyone can check a difusor\'s copy with stock OpenSSL.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> --out keys',
    '<%= config.bin %> <%= command.id %> --out /etc/difusion/keys --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    out: Flags.string({ description: 'directory for manifest.key and manifest.pub', required: true, helpValue: 'DIR' }),
  };

  async run(): Promise<{ privateKey: string; publicKey: string; verify: string }> {
    const { flags } = await this.parse(KeysGenerate);
    let written;
    try {
      written = await writeKeyPair(flags.out);
    } catch (error) {
      if (error instanceof SigningKeyError) this.error(error.message, { exit: 2 });
      throw error;
    }
    const verify = opensslVerifyCommand();
    if (!this.jsonEnabled()) {
      this.log(`private key: ${written.privateKeyFile} (0600; set publication.signing_key to it, keep it off the difusores)`);
      this.log(`public key:  ${written.publicKeyFile} (publish it)`);
      this.log(`check a release: download MANIFEST.sha256, MANIFEST.sha256.sig and ${written.publicKeyFile} (as manifest.pub), then`);
      this.log(`  ${verify}`);
    }
    return { privateKey: written.privateKeyFile, publicKey: written.publicKeyFile, verify };
  }
}
