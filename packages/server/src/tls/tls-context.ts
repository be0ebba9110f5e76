import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import * as tls from 'node:tls';
import { type Logger, silentLogger } from '@keel/core';
import { ConfigError } from '../config';

/** The PEM files of a node's TLS (`--tls-cert`, `--tls-key`, `--tls-ca`) and ActiveMQ's `needClientAuth`. */
export interface TlsSettings {
  /** The node's certificate (PEM; a chain may follow the leaf). */
  certFile: string;
  /** Its private key (PEM, unencrypted). */
  keyFile: string;
  /** CA certificate(s) (PEM) that sign client certificates (mutual TLS) and the peers of ssl:// network bridges; null: Node's root CAs. */
  caFile: string | null;
  /**
   * ActiveMQ's transport option `needClientAuth`: the `ssl://` and `stomp+ssl://` listeners refuse a
   * client whose certificate is not signed by `caFile` (the admin API keeps HTTP Basic auth).
   */
  needClientAuth: boolean;
}

/** TLS handshakes must finish within this (Node's default is 120 s: a slow loris would hold a socket). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** No TLS 1.0/1.1 (RFC 8996). */
export const TLS_MIN_VERSION: tls.SecureVersion = 'TLSv1.2';

interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | null;
}

/** The settings' names as the configuration shows them, for errors. */
const SETTING_OF: Record<keyof TlsMaterial, string> = { cert: 'tls.cert', key: 'tls.key', ca: 'tls.ca' };

function readPem(kind: keyof TlsMaterial, file: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    throw new ConfigError([
      { setting: SETTING_OF[kind], message: `cannot read ${file}: ${(err as Error).message}` },
    ]);
  }
  if (!data.includes('-----BEGIN ')) {
    throw new ConfigError([{ setting: SETTING_OF[kind], message: `${file} holds no PEM data` }]);
  }
  return data;
}

/** Reads the PEM files and checks that they make a context (the key matches the certificate …). */
function loadMaterial(settings: TlsSettings): TlsMaterial {
  const material: TlsMaterial = {
    cert: readPem('cert', settings.certFile),
    key: readPem('key', settings.keyFile),
    ca: settings.caFile === null ? null : readPem('ca', settings.caFile),
  };
  try {
    tls.createSecureContext(contextOptions(material));
  } catch (err) {
    throw new ConfigError([
      {
        setting: 'tls',
        message: `${settings.certFile}, ${settings.keyFile}${settings.caFile ? `, ${settings.caFile}` : ''} do not make a TLS context: ${(err as Error).message}`,
      },
    ]);
  }
  return material;
}

function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}), minVersion: TLS_MIN_VERSION };
}

/**
 * A node's TLS: reads the PEM files once at start (a bad file fails the start with CONFIG_INVALID),
 * makes the TLS servers of the `ssl://` and `stomp+ssl://` listeners and the admin API's https
 * options, and on `reload()` (SIGHUP) reads the files again and hands the new context to every
 * server it made (tls.Server.setSecureContext): connections already open keep their session, new
 * ones get the new certificate. A TLS socket is a net.Socket, so the listeners run the same
 * connection classes as over plain TCP.
 */
export class TlsContext {
  private material: TlsMaterial;
  private readonly servers = new Set<tls.Server>();
  private readonly logger: Logger;

  constructor(
    readonly settings: TlsSettings,
    logger: Logger = silentLogger,
  ) {
    this.logger = logger;
    if (settings.needClientAuth && settings.caFile === null) {
      throw new ConfigError([
        {
          setting: 'tls.needClientAuth',
          message: 'needs tls.ca (--tls-ca): the CA that signs client certificates',
        },
      ]);
    }
    this.material = loadMaterial(settings);
  }

  /** Options of a TLS server for clients of the broker (`needClientAuth` applies). */
  private listenerOptions(): tls.TlsOptions {
    const need = this.settings.needClientAuth;
    return {
      ...contextOptions(this.material),
      requestCert: need,
      rejectUnauthorized: need,
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    };
  }

  /** https options of the admin API: the node's certificate, no client certificate asked. */
  httpsOptions(): tls.TlsOptions {
    return { ...contextOptions(this.material), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS };
  }

  /**
   * A TLS server whose every established connection goes to `onSocket` (as a plain TCP server's
   * would). Handshake failures (no or a wrong client certificate, plain text on a TLS port) are
   * logged and never reach the listener.
   */
  createServer(
    onSocket: (socket: Socket) => void,
    options: { noDelay?: boolean; keepAlive?: boolean } = {},
  ): Server {
    const server = tls.createServer({ ...options, ...this.listenerOptions() }, onSocket);
    server.on('tlsClientError', (err, socket) => {
      this.logger.warn(
        { err: err.message, code: (err as { code?: string }).code, remoteAddress: socket.remoteAddress },
        'TLS handshake failed',
      );
    });
    this.track(server);
    return server;
  }

  /** Keep `server`'s context current across reloads (the admin API's https server) until it closes. */
  track(server: tls.Server): void {
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** PEM material for the node's outgoing ssl:// connections (network bridges): trust tls.ca, show tls.cert. */
  clientOptions(): { ca?: Buffer; cert: Buffer; key: Buffer } {
    const m = this.material;
    return { ...(m.ca ? { ca: m.ca } : {}), cert: m.cert, key: m.key };
  }

  /**
   * Read the files again and give every open TLS server the new context; connections already open
   * are not touched. A bad file leaves the old context in place and throws (CONFIG_INVALID).
   */
  reload(): { servers: number } {
    const material = loadMaterial(this.settings);
    this.material = material;
    // setSecureContext replaces the certificates and CAs only; requestCert / rejectUnauthorized
    // (needClientAuth) stay the server's own.
    for (const server of this.servers) server.setSecureContext(contextOptions(material));
    this.logger.info(
      { servers: this.servers.size, cert: this.settings.certFile },
      'TLS certificates reloaded',
    );
    return { servers: this.servers.size };
  }
}
