import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs the Reflect polyfill loaded first
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** ECDSA P-256 with SHA-256: fast to make, understood by Node, OpenSSL, Python and Java clients. */
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** A throwaway certificate lives this long (a playground, not production). */
export const THROWAWAY_VALIDITY_DAYS = 365;

/** A certificate and its private key, both PEM. */
export interface PemPair {
  cert: string;
  key: string;
}

/** A certificate authority that can issue certificates (`issueCertificate`). */
export interface CertificateAuthority extends PemPair {
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

export interface IssueOptions {
  commonName: string;
  /** DNS names and IP addresses the certificate is valid for (subjectAltName). */
  hosts?: string[];
  /** Extended key usage: serverAuth, clientAuth or both (default both). */
  usage?: 'server' | 'client' | 'both';
  validityDays?: number;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f; // a positive INTEGER
  return bytes.toString('hex');
}

async function keyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function keyPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  // An hour back: a client whose clock is a little behind still accepts the certificate.
  return { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + days * DAY_MS) };
}

/** A new self-signed CA (ECDSA P-256). */
export async function createCertificateAuthority(
  commonName = 'Keel throwaway CA',
  validityDays = THROWAWAY_VALIDITY_DAYS,
): Promise<CertificateAuthority> {
  const keys = await keyPair();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    ...validity(validityDays),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificate,
    privateKey: keys.privateKey,
    cert: certificate.toString('pem'),
    key: keyPem(keys.privateKey),
  };
}

/** A certificate signed by `ca` for a server (its host names) or a client (mutual TLS). */
export async function issueCertificate(ca: CertificateAuthority, options: IssueOptions): Promise<PemPair> {
  const keys = await keyPair();
  const usage = options.usage ?? 'both';
  const ekus: string[] = [];
  if (usage !== 'client') ekus.push(x509.ExtendedKeyUsage.serverAuth);
  if (usage !== 'server') ekus.push(x509.ExtendedKeyUsage.clientAuth);
  const hosts = options.hosts ?? [];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension(ekus),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
  ];
  if (hosts.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        hosts.map((h) => ({ type: isIP(h) ? 'ip' : 'dns', value: h }) as x509.JsonGeneralName),
      ),
    );
  }
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${options.commonName}`,
    issuer: ca.certificate.subject,
    ...validity(options.validityDays ?? THROWAWAY_VALIDITY_DAYS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.privateKey,
    extensions,
  });
  return { cert: certificate.toString('pem'), key: keyPem(keys.privateKey) };
}

/** Where `writeThrowawayTls` put its files. */
export interface ThrowawayTlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A client certificate signed by the same CA, to try mutual TLS (`needClientAuth`). */
  clientCertFile: string;
  clientKeyFile: string;
  /** False when the files were there already and were kept. */
  created: boolean;
}

/** Hosts a throwaway server certificate names when none are given. */
export const THROWAWAY_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/**
 * `keel start --tls`: a throwaway CA, a server certificate for `hosts` and a client certificate,
 * written to `dir` as ca.pem, server.pem, server-key.pem, client.pem, client-key.pem (keys 0600).
 * Files already there are kept (the clients that trust the CA keep working across restarts).
 */
export async function writeThrowawayTls(
  dir: string,
  hosts: readonly string[] = THROWAWAY_HOSTS,
): Promise<ThrowawayTlsFiles> {
  const files = {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    certFile: path.join(dir, 'server.pem'),
    keyFile: path.join(dir, 'server-key.pem'),
    clientCertFile: path.join(dir, 'client.pem'),
    clientKeyFile: path.join(dir, 'client-key.pem'),
  };
  const all = [files.caFile, files.certFile, files.keyFile, files.clientCertFile, files.clientKeyFile];
  if (all.every((f) => existsSync(f))) return { ...files, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCertificateAuthority();
  const server = await issueCertificate(ca, {
    commonName: hosts[0] ?? 'localhost',
    hosts: [...hosts],
    usage: 'both',
  });
  const client = await issueCertificate(ca, { commonName: 'keel-client', usage: 'client' });
  const write = (file: string, text: string, secret = false): void => {
    writeFileSync(file, text, { mode: secret ? 0o600 : 0o644 });
    if (secret) chmodSync(file, 0o600);
  };
  write(files.caFile, ca.cert);
  write(path.join(dir, 'ca-key.pem'), ca.key, true);
  write(files.certFile, server.cert);
  write(files.keyFile, server.key, true);
  write(files.clientCertFile, client.cert);
  write(files.clientKeyFile, client.key, true);
  return { ...files, created: true };
}
