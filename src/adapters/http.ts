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
  /** Redirects followed for one request (within the rules of src/core/probe/egress.ts) before it counts as a loop. */
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

/**
 * The probe's HTTP client: undici with keep-alive and a bounded number of connections per difusor,
 * timeouts per phase, real certificate checks (Node's CA store, plus NODE_EXTRA_CA_CERTS), and the
 * peer certificate of each connection captured at the handshake for its expiry. Redirects are followed
 * by hand, only where src/core/probe/egress.ts allows; DNS answers pass its address rule.
 */
export function createProbeHttp(opts: ProbeHttpOptions): ProbeHttp & { close(): Promise<void> } {
  const certificates = new Map<string, PeerCertificate>();
  const connect = buildConnector({ timeout: opts.connectTimeoutMs, lookup: guardedLookup(opts.lookup) } as Parameters<typeof buildConnector>[0]);
  const agent = new Agent({
    connections: opts.connectionsPerOrigin,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
    connect(options, callback) {
      connect(options, (...args) => {
        const socket = args[1] as Socket | null;
        // The lookup already refused it; this holds should a connection ever be made without it.
        const remote = socket?.remoteAddress;
        const allowed = isIP(options.hostname) !== 0 || !remote || !isInternalAddress(remote) || (isLocalhostName(options.hostname) && isLoopbackAddress(remote));
        if (socket && remote && !allowed) {
          socket.destroy();
          callback(new InternalAddressError(options.hostname, remote), null);
          return;
        }
        if (socket instanceof TLSSocket) {
          const peer = socket.getPeerCertificate();
          if (peer?.valid_to) {
            certificates.set(`${options.hostname}:${options.port}`, {
              validTo: new Date(peer.valid_to).toISOString(),
              subject: [peer.subject?.CN].flat()[0],
              issuer: [peer.issuer?.CN].flat()[0],
            });
          }
        }
        callback(...args);
      });
    },
  });

  // A dispatch handler rather than a body stream: each chunk goes straight into the hash, nothing is buffered.
  const once = (target: URL, keepBody: boolean, maxBytes: number, statusOnly: boolean, started: number): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      let status = 0;
      let ttfbMs = 0;
      let settled = false;
      const headers: Record<string, string | undefined> = {};
      let cancel: ((reason: Error) => void) | undefined;
      let expired: Error | undefined;
      const timer = setTimeout(
        () => {
          expired = new Error(`no complete answer within ${opts.totalTimeoutMs / 1000} s`);
          cancel?.(expired);
        },
        Math.max(0, opts.totalTimeoutMs - (performance.now() - started)),
      );
      const answer = (extra: Partial<Answer> = {}): Answer => ({
        status,
        headers,
        sha256: hash.digest('hex'),
        bytes,
        body: keepBody ? Buffer.concat(chunks) : undefined,
        ttfbMs,
        totalMs: Math.round(performance.now() - started),
        certificate: certificates.get(`${target.hostname}:${target.port || (target.protocol === 'https:' ? '443' : '80')}`),
        ...extra,
      });
      /** Answered before the body's end (a redirect, a status check, a body past its limit): the rest is not read. */
      const settleEarly = (result: Answer): void => {
        settled = true;
        clearTimeout(timer);
        resolve(result);
        cancel?.(new Error('answered'));
      };
      agent.dispatch(
        {
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: 'GET',
          headers: { 'cache-control': 'no-cache', pragma: 'no-cache', 'user-agent': 'difusion-probe' },
        },
        {
          onConnect(abort) {
            cancel = abort;
            // Past the deadline while queued behind this difusor's other requests: never sent.
            if (expired) abort(expired);
          },
          onHeaders(statusCode, rawHeaders) {
            status = statusCode;
            ttfbMs = Math.round(performance.now() - started);
            // A header sent twice (two Cache-Control lines) is read as one list, as HTTP defines it, not as the last line.
            for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
              const name = String(rawHeaders[i]).toLowerCase();
              const value = String(rawHeaders[i + 1]);
              headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
            }
            const location = status >= 300 && status < 400 ? headers.location : undefined;
            // A redirect's body is never read: whatever it holds, it is not the file.
            if (location !== undefined || statusOnly) {
              settleEarly({ status, headers, bytes: 0, ttfbMs, totalMs: ttfbMs, location });
              return false;
            }
            return true;
          },
          onData(chunk) {
            if (settled) return false;
            bytes += chunk.length;
            if (bytes > maxBytes) {
              settleEarly({ status, headers, bytes, ttfbMs, totalMs: Math.round(performance.now() - started), error: `longer than ${maxBytes} bytes`, tooLarge: true });
              return false;
            }
            hash.update(chunk);
            if (keepBody) chunks.push(chunk);
            return true;
          },
          onComplete() {
            if (settled) return;
            clearTimeout(timer);
            resolve(answer());
          },
          onError(error) {
            if (settled) return;
            clearTimeout(timer);
            reject(error);
          },
        },
      );
    });

  return {
    async get(url, { keepBody = false, maxBytes, scope, statusOnly = false } = {}) {
      const started = performance.now();
      const limit = keepBody ? Math.min(maxBytes ?? MAX_KEPT_BYTES, MAX_KEPT_BYTES) : (maxBytes ?? Infinity);
      const rules: RedirectScope = scope ?? { home: url };
      const maxRedirects = opts.maxRedirects ?? MAX_REDIRECTS;
      let target = new URL(url);
      const visited = new Set<string>([target.href]);
      let lastLocation: string | undefined;
      try {
        for (let hop = 0; ; hop++) {
          const reply = await once(target, keepBody, limit, statusOnly, started);
          const { location, ...rest } = reply;
          if (location === undefined) return rest;
          const refuse = (why: string): HttpAnswer => ({ ...rest, redirect: why, location: location.slice(0, MAX_LOCATION_SHOWN) });
          let next: URL;
          try {
            next = new URL(location, target);
          } catch {
            return refuse('sends visitors to something that is not an address');
          }
          const verdict = redirectVerdict(next, rules);
          if (!verdict.follow) return refuse(verdict.why);
          // The cache-busting query must survive a redirect that drops it.
          if (!next.search) next.search = target.search;
          if (visited.has(next.href) || hop >= maxRedirects) return refuse(`redirects in a loop (more than ${maxRedirects} redirects)`);
          visited.add(next.href);
          target = next;
          lastLocation = location;
        }
      } catch (error) {
        const { message, certificate } = describe(error);
        const failed = { headers: {}, bytes: 0, totalMs: Math.round(performance.now() - started), error: message, certificateError: certificate };
        // A listed host whose name leads inside the network: the difusor's redirect is what sent the probe there.
        const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
        if (code === 'EINTERNALADDRESS' && lastLocation !== undefined) {
          return { ...failed, redirect: `sends visitors to ${target.host}, a name for an address inside a private network`, location: lastLocation.slice(0, MAX_LOCATION_SHOWN) };
        }
        return failed;
      }
    },
    close: () => agent.close(),
  };
}
