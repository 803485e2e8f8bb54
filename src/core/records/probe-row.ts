import type { Difusor } from '../registry/types.js';

// What one probe round finds for a difusor: the state directory keeps it, so it lives apart from the probe
// that makes it (the records read it without importing the probe).

export type ProbeFailureKind = 'lag' | 'differs' | 'down' | 'certificate' | 'notice-missing' | 'unknown-cut' | 'redirect';

export interface PeerCertificate {
  /** ISO 8601 instant the certificate expires. */
  validTo: string;
  subject?: string;
  issuer?: string;
}

export interface ProbeRow {
  id: string;
  name: string;
  registryStatus: Difusor['status'];
  ok: boolean;
  kinds: ProbeFailureKind[];
  /** The cut seen, when the manifest is one this host published. */
  cut?: string;
  /** The notice seen (aviso.json), when the difusor shows one. */
  notice?: { at?: string; reason?: string };
  lagSeconds?: number;
  filesChecked: number;
  /** Named: "path: why". */
  differing: string[];
  bytes: number;
  /** Status of MANIFEST.sha256. */
  status?: number;
  ttfbMs?: number;
  totalMs: number;
  certificate?: PeerCertificate & { daysLeft: number };
  warnings: string[];
  error?: string;
}
