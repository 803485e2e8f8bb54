import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Ed25519 signatures over MANIFEST.sha256, so a visitor can check a difusor's copy came from the
 * institute and not only that it is self-consistent. Errors here never carry key material.
 */

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

export interface KeyPairPem {
  /** PKCS#8 PEM. */
  privatePem: string;
  /** SPKI PEM: what `openssl pkeyutl -verify -pubin -inkey` reads. */
  publicPem: string;
}

export function generateKeyPair(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/** The signing key, refused when group or others can read it: a key others can read may have been copied. */
export async function loadSigningKey(file: string): Promise<KeyObject> {
  const st = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new SigningKeyError(`signing key ${file} cannot be read (${error.code ?? 'error'})`);
  });
  if (!st.isFile()) throw new SigningKeyError(`signing key ${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new SigningKeyError(
      `signing key ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 600 ${file}`,
    );
  }
  const pem = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new SigningKeyError(`signing key ${file} cannot be read (${error.code ?? 'error'})`);
  });
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // node's message may quote the input; ours only names the file.
    throw new SigningKeyError(`signing key ${file} is not a PEM private key (expected PKCS#8 from \`difusion keys generate\`)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`signing key ${file} is a ${key.asymmetricKeyType ?? 'unknown'} key; an Ed25519 key is required`);
  }
  return key;
}

/** base64 of the Ed25519 signature of the manifest's bytes (what goes into MANIFEST.sha256.sig). */
export function signManifest(text: string, key: KeyObject): string {
  return sign(null, Buffer.from(text), key).toString('base64');
}

export function verifyManifest(text: string, sigB64: string, publicKey: KeyObject | string | Buffer): boolean {
  const key = typeof publicKey === 'string' || Buffer.isBuffer(publicKey) ? createPublicKey(publicKey) : publicKey;
  try {
    return verify(null, Buffer.from(text), key, Buffer.from(sigB64.trim(), 'base64'));
  } catch {
    return false;
  }
}

/** How anyone checks a release's signature with stock OpenSSL 3, run inside the release. */
export function opensslVerifyCommand(publicKeyFile = 'manifest.pub'): string {
  return `base64 -d MANIFEST.sha256.sig > sig.bin && openssl pkeyutl -verify -pubin -inkey ${publicKeyFile} -rawin -in MANIFEST.sha256 -sigfile sig.bin`;
}

export interface WrittenKeyPair {
  privateKeyFile: string;
  publicKeyFile: string;
}

/**
 * DIR/manifest.key (0600) and DIR/manifest.pub (0644). The private key is created with O_EXCL:
 * overwriting it would silently invalidate every signature already published.
 */
export async function writeKeyPair(dir: string, pair: KeyPairPem = generateKeyPair()): Promise<WrittenKeyPair> {
  const privateKeyFile = path.resolve(dir, 'manifest.key');
  const publicKeyFile = path.resolve(dir, 'manifest.pub');
  await mkdir(dir, { recursive: true });
  for (const file of [privateKeyFile, publicKeyFile]) {
    if (existsSync(file)) throw new SigningKeyError(`${file} already exists; refusing to overwrite it (move it away first)`);
  }
  const handle = await open(privateKeyFile, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST') throw new SigningKeyError(`${privateKeyFile} already exists; refusing to overwrite it`);
    throw new SigningKeyError(`cannot create ${privateKeyFile} (${error.code ?? 'error'})`);
  });
  try {
    // The umask may have narrowed the mode, never widened it; set it exactly.
    await handle.chmod(0o600);
    await handle.writeFile(pair.privatePem);
  } finally {
    await handle.close();
  }
  await writeFile(publicKeyFile, pair.publicPem, { mode: 0o644, flag: 'wx' });
  await chmod(publicKeyFile, 0o644);
  return { privateKeyFile, publicKeyFile };
}
