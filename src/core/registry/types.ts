/** The registry as the rest of the program sees it: defaults applied, paths resolved. */

export type Transport = 'ssh' | 'local';
/** shell: the helper is sent inline over a normal login; restricted: the account runs only the installed helper. */
export type Access = 'shell' | 'restricted';
export type DifusorStatus = 'active' | 'suspended';

export interface Contact {
  name?: string;
  email?: string;
  phone?: string;
}

export interface Difusor {
  id: string;
  name: string;
  transport: Transport;
  /** Required for ssh difusores. */
  host?: string;
  port: number;
  user?: string;
  /** Pinned OpenSSH public key line: "ssh-ed25519 AAAA... [comment]". */
  host_key?: string;
  /** Absolute, normalised. Releases live below it. */
  path: string;
  public_url: string;
  /** Hosts this difusor may redirect visitors to (a CDN in front of it); see src/core/shared/egress.ts. */
  redirect_hosts?: string[];
  contact?: Contact;
  status: DifusorStatus;
  /** ISO 8601 with offset; set by cutoff while suspended. */
  suspended_at?: string;
  suspension_reason?: string;
  access: Access;
  /** rsync -z with --skip-compress for what is already compressed (a thin or shared link). */
  compress?: boolean;
  /** Source address pattern for the authorized_keys from= option. */
  from?: string;
  access_log?: string;
  /** Absolute (resolved against the registry's directory). */
  logo?: string;
}

/** Local wall times "YYYY-MM-DDTHH:MM[:SS]" in publication.timezone. */
export interface TimeWindow {
  start: string;
  end: string;
}

export interface SshSettings {
  /** Absolute (~ expanded). */
  identity_file?: string;
  connect_timeout_s: number;
}

export interface Publication {
  timezone: string;
  window: TimeWindow;
  simulacros: TimeWindow[];
  keep_releases: number;
  concurrency: number;
  /** Once the first difusor is ready, the others get at most this long before the ready ones switch. */
  switch_deadline_s: number;
  /**
   * How long a run's lease on a difusor lasts unless renewed (one run at a time across publication hosts). The
   * loader always sets it (120 by default); optional for registries built in code.
   */
  lease_s?: number;
  ssh: SshSettings;
  official_url?: string;
  /** Absolute (resolved against the registry's directory). */
  signing_key?: string;
  /** Absolute (resolved against the registry's directory). */
  state_dir: string;
}

export interface Registry {
  /** Absolute path of the registry file. */
  file: string;
  version: 1;
  publication: Publication;
  difusores: Difusor[];
}

/** A problem found in the registry, positioned for FILE:LINE:COL output. Lines and columns are 1-based. */
export interface RegistryProblem {
  file: string;
  line: number;
  col: number;
  /** Dotted path to the field, e.g. "difusores[2].host_key"; empty for the document itself. */
  field: string;
  message: string;
}

export type LoadResult = { ok: true; registry: Registry } | { ok: false; problems: RegistryProblem[] };
