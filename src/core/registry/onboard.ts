import type { Difusor } from './types.js';

/**
 * What a difusor's admin installs for a restricted account: the authorized_keys line pinning the
 * helper, the helper itself, the Apache vhost, and the registry fields the institute then sets.
 * Pure: the command reads the files and prints.
 */

export const HELPER_INSTALL_PATH = '/usr/local/libexec/difusion-helper';

export class OnboardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnboardError';
  }
}

const PLAIN = /^[A-Za-z0-9_./:+,=@%-]+$/;

/** A word for the shell sshd runs the forced command with; single-quoted unless plain. */
function shellWord(word: string): string {
  return PLAIN.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** An authorized_keys option value goes between double quotes; a quote inside needs a backslash. */
function optionValue(value: string): string {
  return `"${value.replace(/"/g, '\\"')}"`;
}

const PUBLIC_KEY_LINE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( .*)?$/;

/** The institute's public key line as read from `<identity_file>.pub`. */
export function parsePublicKeyLine(text: string, file: string): string {
  const line = text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (!line || !PUBLIC_KEY_LINE.test(line)) {
    // Never echo the contents: a private key saved as .pub by mistake must not reach a terminal log.
    throw new OnboardError(`${file} does not hold an OpenSSH public key line ("ssh-ed25519 AAAA... comment")`);
  }
  return line;
}

export function authorizedKeysLine(difusor: Difusor, publicKey: string, helperPath = HELPER_INSTALL_PATH): string {
  if (/[\n\r\0]/.test(difusor.path)) throw new OnboardError(`difusor ${difusor.id}: path holds a control character`);
  if (difusor.access_log && /[\n\r\0]/.test(difusor.access_log)) throw new OnboardError(`difusor ${difusor.id}: access_log holds a control character`);
  // The helper's logs verb reads only the glob pinned here: the one the client sends could name any file.
  const pin = difusor.access_log ? `DIFUSION_ACCESS_LOG=${shellWord(difusor.access_log)} ` : '';
  const command = `${pin}sh ${shellWord(helperPath)} ${shellWord(difusor.path)}`;
  const options = ['restrict', `command=${optionValue(command)}`];
  if (difusor.from) options.push(`from=${optionValue(difusor.from)}`);
  return `${options.join(',')} ${publicKey}`;
}

export function fillVhost(template: string, difusor: Difusor): string {
  if (/["\n\r\0]/.test(difusor.path)) throw new OnboardError(`difusor ${difusor.id}: path cannot go into an Apache directive`);
  return template.replace(/@SERVER_NAME@/g, serverName(difusor)).replace(/@PATH@/g, difusor.path.replace(/\/+$/, '') || '/');
}

export function serverName(difusor: Difusor): string {
  return new URL(difusor.public_url).hostname;
}

export interface Onboarding {
  id: string;
  authorizedKeys: string;
  /** Where the admin installs the helper on the difusor. */
  helperPath: string;
  helperInstall: string[];
  vhost: string;
  /** What the institute sets in the registry once the admin is done. */
  registryFields: string[];
  notes: string[];
}

export function formatOnboarding(input: { difusor: Difusor; publicKey: string; vhostTemplate: string; helperFile?: string }): Onboarding {
  const { difusor } = input;
  if (difusor.transport !== 'ssh') {
    throw new OnboardError(`difusor ${difusor.id} is transport: local: a directory on this host has no account to restrict`);
  }
  const host = difusor.host as string;
  const portFlag = difusor.port === 22 ? '' : ` -p ${difusor.port}`;
  const notes: string[] = [];
  const url = new URL(difusor.public_url);
  if (url.pathname !== '/') {
    notes.push(
      `public_url serves below ${url.pathname}: instead of a whole vhost, put "Alias ${url.pathname.replace(/\/$/, '')} ${difusor.path}/current" and the <Directory> blocks into the existing one`,
    );
  }
  return {
    id: difusor.id,
    authorizedKeys: authorizedKeysLine(difusor, input.publicKey),
    helperPath: HELPER_INSTALL_PATH,
    helperInstall: [
      `install -d -m 0755 /usr/local/libexec`,
      `install -m 0755 ${input.helperFile ? shellWord(input.helperFile) : 'difusion-helper'} ${HELPER_INSTALL_PATH}`,
      `install -d -o ${shellWord(difusor.user ?? 'prep')} -m 0755 ${shellWord(difusor.path)}`,
      // With the institute's public key in place, the helper refuses any release whose manifest that key did not sign.
      `install -D -m 0644 manifest.pub /etc/difusion/manifest.pub   # the institute's manifest signing key (difusion keys generate), when it signs`,
    ],
    vhost: fillVhost(input.vhostTemplate, difusor),
    registryFields: [
      `access: restricted`,
      `host_key: the output of \`ssh-keyscan -t ed25519${portFlag} ${host}\`, its fingerprint (ssh-keygen -lf) read back by phone by the difusor's admin from \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\``,
    ],
    notes,
  };
}
