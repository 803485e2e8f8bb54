import { createHash } from 'node:crypto';
import dns from 'node:dns';
import { createRequire } from 'node:module';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type * as Undici from 'undici';
import { MAX_REDIRECTS, isInternalAddress, isLocalhostName, isLoopbackAddress, redirectVerdict, type RedirectScope } from '../core/shared/egress.js';
import type { HttpResult } from '../core/publish/preflight.js';
import type { HttpAnswer, PeerCertificate, ProbeHttp } from '../core/probe/probe.js';

/**
 * Preflight's HTTP check: the status of the difusor's public_url within a deadline, through the probe's
 * client (so the same redirect and address rules hold), without reading the body.
 */
export async function httpGet(url: string, timeoutMs: number, scope?: RedirectScope, lookup?: LookupFunction): Promise<HttpResult> {
  const client = createProbeHttp({
    connectTimeoutMs: timeoutMs,
    headersTimeoutMs: timeoutMs,
    bodyTimeoutMs: timeoutMs,
    totalTimeoutMs: timeoutMs,
    connectionsPerOrigin: 1,
    lookup,
  });
  try {
    const answer = await client.get(url, { scope, statusOnly: true });
    if (answer.redirect) return { ok: false, status: answer.status, error: `${answer.redirect} (Location: ${answer.location ?? '?'})` };
    if (answer.error !== undefined) return { ok: false, error: answer.error };
    const status = answer.status ?? 0;
    return { ok: status >= 200 && status < 400, status };
  } finally {
    await client.close();
  }
}

export interface ProbeHttpOptions {
  connectTimeoutMs: number;
  /** From the request sent to the response's headers. */
  headersTimeoutMs: number;
  /** Between two chunks of a body. */
  bodyTimeoutMs: number;
  /** The whole answer, redirects included: a body trickling in a byte at a time never trips the others. */
  totalTimeoutMs: number;
  /** Keep-alive connections per difusor. */
  connectionsPerOrigin: number;
  /** Redirects followed for one request (within the rules of src/core/shared/egress.ts) before it counts as a loop. */
  maxRedirects?: number;
  /** DNS as the system answers it, unless a test injects its own; every answer passes the address rule. */
  lookup?: LookupFunction;
}

// Only the agent and the connector: undici's index also loads fetch, WebSocket, caches and mocks, which cost a
// probe run from cron more CPU (~0.1 s) than its own work. Pinned in package.json, so these paths do not move.
const require = createRequire(import.meta.url);
const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
const buildConnector = require('undici/lib/core/connect.js') as typeof Undici.buildConnector;

/** The largest body kept in memory (a manifest of a federal election's cut is a few MB). */
export const MAX_KEPT_BYTES = 64 * 1048576;
/** A Location header as journaled: enough to see where it points, not a page of it. */
const MAX_LOCATION_SHOWN = 200;

/** Node's own codes for a certificate TLS refused (openssl's verify errors, plus a name mismatch). */
const CERTIFICATE_CODES = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE|DECRYPT_CERT)|ERR_TLS_CERT_ALTNAME_INVALID|INVALID_CA|INVALID_PURPOSE|CERT_UNTRUSTED|CERT_REJECTED|HOSTNAME_MISMATCH)/;

function describe(error: unknown): { message: string; certificate: boolean } {
  const e = error as Error & { code?: string; cause?: Error & { code?: string } };
  const code = e.cause?.code ?? e.code ?? '';
  const certificate = CERTIFICATE_CODES.test(code);
  const timeouts: Record<string, string> = {
    UND_ERR_CONNECT_TIMEOUT: 'no connection within the connect timeout',
    UND_ERR_HEADERS_TIMEOUT: 'no response headers within the timeout',
    UND_ERR_BODY_TIMEOUT: 'the body stalled past the timeout',
  };
  const message = timeouts[code] ?? `${code ? `${code}: ` : ''}${e.cause?.message ?? e.message}`;
  return { message: certificate ? `certificate refused: ${message}` : message, certificate };
}

class InternalAddressError extends Error {
  readonly code = 'EINTERNALADDRESS';
  constructor(hostname: string, address: string) {
    super(`${hostname} resolves to ${address}, an address inside a private network; refused (an internal mirror: write its IP address in the registry)`);
  }
}

/**
 * The resolver the connections use: every address a DNS name answers must be public. It is the one lookup
 * made for the connection, so an answer that changes between two lookups (DNS rebinding) cannot pass one
 * check and connect to another address.
 */
export function guardedLookup(lookup: LookupFunction = dns.lookup as unknown as LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '');
      const list = (Array.isArray(addresses) ? addresses : [{ address: addresses, family: isIP(addresses) }]) as dns.LookupAddress[];
      // "localhost" is answered by this host (RFC 6761), never by a difusor's DNS: the registry's own loopback mirror.
      const loopbackName = isLocalhostName(hostname) && list.every((a) => isLoopbackAddress(a.address));
      const internal = loopbackName ? undefined : list.find((a) => isInternalAddress(a.address));
      if (internal) return callback(new InternalAddressError(hostname, internal.address), '');
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), '');
      if (options.all) return callback(null, list);
      const first = list[0] as dns.LookupAddress;
      return callback(null, first.address, first.family);
    });
  };
}

type Answer = HttpAnswer & { location?: string };
type GetOptions = NonNullable<Parameters<ProbeHttp['get']>[1]>;

/** One GET of a chain of redirects: where, how much of the body to read and keep, and when the chain began. */
interface OneRequest {
  target: URL;
  keepBody: boolean;
  maxBytes: number;
  statusOnly: boolean;
  /** performance.now() at the chain's first request: the total timeout counts from there. */
  started: number;
}

/**
 * The probe's HTTP client: undici with keep-alive and a bounded number of connections per difusor,
 * timeouts per phase, real certificate checks (Node's CA store, plus NODE_EXTRA_CA_CERTS), and the
 * peer certificate of each connection captured at the handshake for its expiry. Redirects are followed
 * by hand, only where src/core/shared/egress.ts allows; DNS answers pass its address rule.
 */
export function createProbeHttp(opts: ProbeHttpOptions): ProbeHttp & { close(): Promise<void> } {
  const certificates = new Map<string, PeerCertificate>();
  const agent = guardedAgent(opts, certificates);
  const fetchOnce = (request: OneRequest): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const certificate = (): PeerCertificate | undefined => certificates.get(certificateKey(request.target));
      agent.dispatch(noCacheGet(request.target), new AnswerReader(request, opts.totalTimeoutMs, certificate, resolve, reject));
    });
  return {
    get: (url, options = {}) => getFollowingRedirects(url, options, opts.maxRedirects ?? MAX_REDIRECTS, fetchOnce),
    close: () => agent.close(),
  };
}

/** undici's agent, whose every connection resolves through the guarded lookup, is checked once open, and leaves its certificate. */
function guardedAgent(opts: ProbeHttpOptions, certificates: Map<string, PeerCertificate>): InstanceType<typeof Agent> {
  const connect = buildConnector({ timeout: opts.connectTimeoutMs, lookup: guardedLookup(opts.lookup) } as Parameters<typeof buildConnector>[0]);
  return new Agent({
    connections: opts.connectionsPerOrigin,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
    connect(options, callback) {
      connect(options, (...args) => {
        const socket = args[1] as Socket | null;
        const internal = socket ? internalPeer(options.hostname, socket) : undefined;
        if (socket && internal) {
          socket.destroy();
          callback(new InternalAddressError(options.hostname, internal), null);
          return;
        }
        const peer = socket instanceof TLSSocket ? peerCertificate(socket) : undefined;
        if (peer) certificates.set(`${options.hostname}:${options.port}`, peer);
        callback(...args);
      });
    },
  });
}

/** The address a connection reached inside a private network when its name should not lead there. */
function internalPeer(hostname: string, socket: Socket): string | undefined {
  // The lookup already refused it; this holds should a connection ever be made without it.
  const remote = socket.remoteAddress;
  const allowed = isIP(hostname) !== 0 || !remote || !isInternalAddress(remote) || (isLocalhostName(hostname) && isLoopbackAddress(remote));
  return remote && !allowed ? remote : undefined;
}

/** The certificate TLS accepted at the handshake, for its expiry. */
function peerCertificate(socket: TLSSocket): PeerCertificate | undefined {
  const peer = socket.getPeerCertificate();
  if (!peer?.valid_to) return undefined;
  return {
    validTo: new Date(peer.valid_to).toISOString(),
    subject: [peer.subject?.CN].flat()[0],
    issuer: [peer.issuer?.CN].flat()[0],
  };
}

/** How a target's connection filed its certificate: host and port, the scheme's port when the URL names none. */
function certificateKey(target: URL): string {
  return `${target.hostname}:${target.port || (target.protocol === 'https:' ? '443' : '80')}`;
}

function noCacheGet(target: URL): Undici.Dispatcher.DispatchOptions {
  return {
    origin: target.origin,
    path: `${target.pathname}${target.search}`,
    method: 'GET',
    headers: { 'cache-control': 'no-cache', pragma: 'no-cache', 'user-agent': 'difusion-probe' },
  };
}

/**
 * One GET and the redirects it leads to, each followed by hand and only as the egress rules allow, until an
 * answer that is not a redirect, a redirect refused, or the loop limit.
 */
async function getFollowingRedirects(
  url: string,
  { keepBody = false, maxBytes, scope, statusOnly = false }: GetOptions,
  maxRedirects: number,
  fetchOnce: (request: OneRequest) => Promise<Answer>,
): Promise<HttpAnswer> {
  const started = performance.now();
  const limit = keepBody ? Math.min(maxBytes ?? MAX_KEPT_BYTES, MAX_KEPT_BYTES) : (maxBytes ?? Infinity);
  const rules: RedirectScope = scope ?? { home: url };
  let target = new URL(url);
  const visited = new Set<string>([target.href]);
  let lastLocation: string | undefined;
  try {
    for (let hop = 0; ; hop++) {
      const { location, ...rest } = await fetchOnce({ target, keepBody, maxBytes: limit, statusOnly, started });
      if (location === undefined) return rest;
      const next = nextHop(location, target, rules);
      if (typeof next === 'string') return refusedRedirect(rest, next, location);
      if (visited.has(next.href) || hop >= maxRedirects) return refusedRedirect(rest, `redirects in a loop (more than ${maxRedirects} redirects)`, location);
      visited.add(next.href);
      target = next;
      lastLocation = location;
    }
  } catch (error) {
    return failedAnswer(error, started, target, lastLocation);
  }
}

/** Where a redirect leads, when the egress rules let the probe follow it; else why not. */
function nextHop(location: string, from: URL, rules: RedirectScope): URL | string {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return 'sends visitors to something that is not an address';
  }
  const verdict = redirectVerdict(next, rules);
  if (!verdict.follow) return verdict.why;
  // The cache-busting query must survive a redirect that drops it.
  if (!next.search) next.search = from.search;
  return next;
}

function refusedRedirect(answer: HttpAnswer, why: string, location: string): HttpAnswer {
  return { ...answer, redirect: why, location: location.slice(0, MAX_LOCATION_SHOWN) };
}

/** A request that got no answer, told as the operator reads it. */
function failedAnswer(error: unknown, started: number, target: URL, lastLocation: string | undefined): HttpAnswer {
  const { message, certificate } = describe(error);
  const failed = { headers: {}, bytes: 0, totalMs: Math.round(performance.now() - started), error: message, certificateError: certificate };
  // A listed host whose name leads inside the network: the difusor's redirect is what sent the probe there.
  const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
  if (code === 'EINTERNALADDRESS' && lastLocation !== undefined) {
    return { ...failed, redirect: `sends visitors to ${target.host}, a name for an address inside a private network`, location: lastLocation.slice(0, MAX_LOCATION_SHOWN) };
  }
  return failed;
}

/**
 * One GET read by a dispatch handler rather than a body stream: each chunk goes straight into the hash, nothing
 * is buffered; the whole answer, time queued behind the difusor's other requests included, has one deadline.
 */
class AnswerReader implements Undici.Dispatcher.DispatchHandler {
  private readonly hash = createHash('sha256');
  private readonly chunks: Buffer[] = [];
  private readonly headers: Record<string, string | undefined> = {};
  private bytes = 0;
  private status = 0;
  private ttfbMs = 0;
  private settled = false;
  private cancel: ((reason: Error) => void) | undefined;
  private expired: Error | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly request: OneRequest,
    private readonly totalTimeoutMs: number,
    private readonly certificate: () => PeerCertificate | undefined,
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (error: Error) => void,
  ) {
    this.timer = setTimeout(() => this.expire(), Math.max(0, totalTimeoutMs - (performance.now() - request.started)));
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.cancel = abort;
    // Past the deadline while queued behind this difusor's other requests: never sent.
    if (this.expired) abort(this.expired);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    this.ttfbMs = this.elapsedMs();
    joinHeaders(this.headers, rawHeaders);
    const location = statusCode >= 300 && statusCode < 400 ? this.headers.location : undefined;
    // A redirect's body is never read: whatever it holds, it is not the file.
    if (location !== undefined || this.request.statusOnly) {
      this.settleEarly({ status: statusCode, headers: this.headers, bytes: 0, ttfbMs: this.ttfbMs, totalMs: this.ttfbMs, location });
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.settled) return false;
    this.bytes += chunk.length;
    const { maxBytes, keepBody } = this.request;
    if (this.bytes > maxBytes) {
      const { status, headers, bytes, ttfbMs } = this;
      this.settleEarly({ status, headers, bytes, ttfbMs, totalMs: this.elapsedMs(), error: `longer than ${maxBytes} bytes`, tooLarge: true });
      return false;
    }
    this.hash.update(chunk);
    if (keepBody) this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    clearTimeout(this.timer);
    this.resolve(this.wholeAnswer());
  }

  onError(error: Error): void {
    if (this.settled) return;
    clearTimeout(this.timer);
    this.reject(error);
  }

  private expire(): void {
    this.expired = new Error(`no complete answer within ${this.totalTimeoutMs / 1000} s`);
    this.cancel?.(this.expired);
  }

  /** Answered before the body's end (a redirect, a status check, a body past its limit): the rest is not read. */
  private settleEarly(result: Answer): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(result);
    this.cancel?.(new Error('answered'));
  }

  private wholeAnswer(): Answer {
    return {
      status: this.status,
      headers: this.headers,
      sha256: this.hash.digest('hex'),
      bytes: this.bytes,
      body: this.request.keepBody ? Buffer.concat(this.chunks) : undefined,
      ttfbMs: this.ttfbMs,
      totalMs: this.elapsedMs(),
      certificate: this.certificate(),
    };
  }

  private elapsedMs(): number {
    return Math.round(performance.now() - this.request.started);
  }
}

/** A header sent twice (two Cache-Control lines) is read as one list, as HTTP defines it, not as the last line. */
function joinHeaders(headers: Record<string, string | undefined>, rawHeaders: Buffer[]): void {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = String(rawHeaders[i]).toLowerCase();
    const value = String(rawHeaders[i + 1]);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
}
