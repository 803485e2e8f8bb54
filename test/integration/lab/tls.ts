/** Certificates for lab TLS vhosts, made with openssl: a lab CA, and server certificates for 127.0.0.1. */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface CertificatePair {
  cert: string;
  key: string;
}

export interface LabCertificates {
  /** The lab CA's certificate: what NODE_EXTRA_CA_CERTS points to for the valid case. */
  ca: string;
  /** Signed by the lab CA, valid from now for `validDays`. */
  valid: CertificatePair;
  /** Signed by the lab CA, expired on 2021-01-01. */
  expired: CertificatePair;
  /** Signed by itself. */
  selfSigned: CertificatePair;
}

const openssl = (dir: string, args: string[]) => exec('openssl', args, { cwd: dir });

export async function makeLabCertificates(dir: string, opts: { validDays: number }): Promise<LabCertificates> {
  await mkdir(join(dir, 'db'), { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '30', '-subj', '/CN=difusion lab CA']);
  await openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  await writeFile(join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  await openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(opts.validDays), '-extfile', 'san.cnf', '-out', 'valid.pem']);
  // OpenSSL 3.0's x509 has no -not_after; `openssl ca` takes explicit dates, so the lab CA signs one already expired.
  await writeFile(join(dir, 'db', 'index.txt'), '');
  await writeFile(join(dir, 'db', 'serial'), '01\n');
  await writeFile(
    join(dir, 'ca.cnf'),
    ['[ca]', 'default_ca = lab', '[lab]', 'database = db/index.txt', 'serial = db/serial', 'new_certs_dir = db', 'default_md = sha256', 'policy = any',
      '[any]', 'commonName = supplied', '[san]', 'subjectAltName = IP:127.0.0.1', ''].join('\n'),
  );
  await openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', 'server.csr', '-startdate', '20200101000000Z', '-enddate', '20210101000000Z', '-extensions', 'san', '-notext', '-out', 'expired.pem']);
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.pem', '-days', '30', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const at = (f: string) => join(dir, f);
  return {
    ca: at('ca.pem'),
    valid: { cert: at('valid.pem'), key: at('server.key') },
    expired: { cert: at('expired.pem'), key: at('server.key') },
    selfSigned: { cert: at('self.pem'), key: at('self.key') },
  };
}
