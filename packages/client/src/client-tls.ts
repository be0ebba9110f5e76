import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { InvalidArgumentError } from '@keel/protocol';

type Pem = string | Buffer;

/**
 * TLS of `ssl://` connections (ConnectOptions.tls). The broker is verified by default: its
 * certificate must chain to a trusted CA (Node's roots, or `ca` / `caFile`) and name the host
 * dialled. PEM may be given inline (`ca`, `cert`, `key`) or as files (`caFile`, `certFile`,
 * `keyFile`, read once when the connection is created).
 */
export interface ClientTlsOptions {
  /** CA certificate(s) that sign the broker's certificate, PEM; default Node's root CAs. */
  ca?: Pem | Pem[];
  caFile?: string;
  /** The client's certificate for brokers with `needClientAuth` (mutual TLS), PEM. */
  cert?: Pem;
  certFile?: string;
  /** Its private key, PEM. */
  key?: Pem;
  keyFile?: string;
  /** Passphrase of an encrypted key. */
  passphrase?: string;
  /**
   * Verify the broker's certificate chain (Node's `rejectUnauthorized`). Default true. false is an
   * explicit opt-out: the traffic is encrypted but any server can pose as the broker.
   */
  verifyServer?: boolean;
  /**
   * Check that the certificate names the host dialled (ActiveMQ's `socket.verifyHostName`; a URI
   * may say `?verifyHostName=false` per broker). Default true.
   */
  verifyHostName?: boolean;
  /** The name to ask for (SNI) and check instead of the host dialled. */
  servername?: string;
}

const KNOWN = new Set([
  'ca',
  'caFile',
  'cert',
  'certFile',
  'key',
  'keyFile',
  'passphrase',
  'verifyServer',
  'verifyHostName',
  'servername',
]);

function read(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(`tls.${option}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** What a connection keeps: the PEM read once, the checks to make. */
export interface ResolvedClientTls {
  secure: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'passphrase'>;
  verifyServer: boolean;
  verifyHostName: boolean;
  servername?: string;
}

/** Validates `options` and reads its files (InvalidArgumentError naming the option). */
export function resolveClientTls(options: ClientTlsOptions | undefined): ResolvedClientTls {
  const o = options ?? {};
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('option tls must be an object');
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k))
      throw new InvalidArgumentError(`unknown option "tls.${k}" (known: ${[...KNOWN].join(', ')})`);
  }
  for (const [inline, file] of [
    ['ca', 'caFile'],
    ['cert', 'certFile'],
    ['key', 'keyFile'],
  ] as const) {
    if (o[inline] !== undefined && o[file] !== undefined) {
      throw new InvalidArgumentError(`give tls.${inline} or tls.${file}, not both`);
    }
  }
  for (const k of ['verifyServer', 'verifyHostName'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') {
      throw new InvalidArgumentError(`tls.${k} must be true or false (got ${JSON.stringify(o[k])})`);
    }
  }
  const secure: ResolvedClientTls['secure'] = {};
  const ca = o.caFile !== undefined ? read('caFile', o.caFile) : o.ca;
  if (ca !== undefined) secure.ca = ca;
  const cert = o.certFile !== undefined ? read('certFile', o.certFile) : o.cert;
  const key = o.keyFile !== undefined ? read('keyFile', o.keyFile) : o.key;
  if ((cert === undefined) !== (key === undefined)) {
    throw new InvalidArgumentError(
      'tls: a client certificate needs its key (cert/certFile with key/keyFile)',
    );
  }
  if (cert !== undefined) secure.cert = cert;
  if (key !== undefined) secure.key = key;
  if (o.passphrase !== undefined) secure.passphrase = o.passphrase;
  return {
    secure,
    verifyServer: o.verifyServer !== false,
    verifyHostName: o.verifyHostName !== false,
    ...(o.servername !== undefined ? { servername: o.servername } : {}),
  };
}

/** tls.connect options for one broker; `verifyHostName` of its URI wins over the connection's. */
export function tlsConnectOptions(
  resolved: ResolvedClientTls,
  host: string,
  endpointVerifyHostName: boolean | undefined,
): ConnectionOptions {
  const checkName = endpointVerifyHostName ?? resolved.verifyHostName;
  const servername = resolved.servername ?? (isIP(host) ? undefined : host);
  return {
    ...resolved.secure,
    minVersion: 'TLSv1.2',
    rejectUnauthorized: resolved.verifyServer,
    ...(servername !== undefined ? { servername } : {}),
    // The chain is still verified (rejectUnauthorized); only the name check is skipped.
    ...(checkName ? {} : { checkServerIdentity: () => undefined }),
  };
}
