import { createHash } from 'node:crypto';

/** A parsed OpenSSH public key line ("type base64 [comment]"). */
export interface HostKey {
  type: string;
  /** The wire-format key blob. */
  blob: Buffer;
}

const SUPPORTED = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
]);

function readString(buf: Buffer, offset: number): { value: Buffer; next: number } | undefined {
  if (offset + 4 > buf.length) return undefined;
  const len = buf.readUInt32BE(offset);
  const end = offset + 4 + len;
  if (end > buf.length) return undefined;
  return { value: buf.subarray(offset + 4, end), next: end };
}

/** Parses "ssh-ed25519 AAAA... comment"; returns an error message when it is not a usable host key. */
export function parseHostKey(line: string): HostKey | string {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) return 'expected "<type> <base64-key> [comment]"';
  const [type, b64] = parts as [string, string];
  if (!SUPPORTED.has(type)) return `unsupported key type "${type}" (use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa)`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return 'the key is not valid base64';
  const blob = Buffer.from(b64, 'base64');
  const name = readString(blob, 0);
  if (!name || name.value.toString('latin1') !== type) return `the key data does not hold a ${type} key`;
  // Every supported type carries at least one more length-prefixed field; its presence proves the blob is whole.
  const field = readString(blob, name.next);
  if (!field || field.value.length === 0) return 'the key data is truncated';
  if (type === 'ssh-ed25519' && field.value.length !== 32) return 'an ed25519 key must be 32 bytes';
  return { type, blob };
}

/** OpenSSH's fingerprint format: "SHA256:" + unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}
