/**
 * The ssl:// and stomp+ssl:// listeners in process: a TlsContext's server in front of the same
 * NativeListener / StompListener, the Keel client over ssl://, certificates from
 * throwaway-certs.ts. Real sockets and TLS; the broker runs on the in-memory store.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { connect } from '@keel/client';
import { Broker, MemoryDatabase, MemoryStore } from '@keel/core';
import { NativeListener } from '../native/native-listener';
import { StompListener } from '../stomp/stomp-listener';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueCertificate,
  type PemPair,
} from './throwaway-certs';
import { TlsContext } from './tls-context';

jest.setTimeout(30_000);

/** Over TLS 1.3 the broker's refusal of the client certificate arrives after the client's handshake. */
const MTLS_REFUSED = /certificate required|closed the connection during the handshake|TLS:|alert/i;

const DESCRIBE = () => ({
  broker: { name: 'n1', cluster: 'c', role: 'master' as const, epoch: 1, version: '0.1.0' },
  brokers: [],
});

let dir: string;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let server: PemPair;
let client: PemPair;
let broker: Broker;
const open: { stop(): Promise<void> }[] = [];

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keel-tls-'));
  ca = await createCertificateAuthority('test CA');
  otherCa = await createCertificateAuthority('another CA');
  server = await issueCertificate(ca, { commonName: 'localhost', hosts: ['localhost', '127.0.0.1'] });
  client = await issueCertificate(ca, { commonName: 'client-1', usage: 'client' });
  write('ca.pem', ca.cert);
  write('other-ca.pem', otherCa.cert);
  write('server.pem', server.cert);
  write('server-key.pem', server.key);
  write('client.pem', client.cert);
  write('client-key.pem', client.key);
  const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'tls' });
  await store.open();
  await store.takeOver('n1', 'test');
  broker = new Broker({ nodeName: 'n1', store });
  await broker.start();
});

afterEach(async () => {
  for (const l of open.splice(0)) await l.stop();
});

afterAll(async () => {
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

function context(needClientAuth = false): TlsContext {
  return new TlsContext({
    certFile: path.join(dir, 'server.pem'),
    keyFile: path.join(dir, 'server-key.pem'),
    caFile: path.join(dir, 'ca.pem'),
    needClientAuth,
  });
}

async function sslListener(ctx: TlsContext): Promise<number> {
  const listener = new NativeListener({
    broker,
    host: '127.0.0.1',
    port: 0,
    describe: DESCRIBE,
    createServer: ctx.createServer.bind(ctx),
  });
  open.push(listener);
  return (await listener.start()).port;
}

/** The certificate a fresh TLS connection is shown (its serial number). */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

test('ssl://: the client verifies the broker against its CA, sends and receives', async () => {
  const port = await sslListener(context());
  const conn = await connect(`ssl://localhost:${port}`, { tls: { caFile: path.join(dir, 'ca.pem') } });
  const session = await conn.createSession();
  const consumer = await session.createConsumer('queue://tls.a');
  const got = new Promise<string>((resolve) => consumer.onMessage((m) => resolve(m.body.toString())));
  await session.createProducer('queue://tls.a').send(Buffer.from('over TLS'));
  expect(await got).toBe('over TLS');
  await conn.close();
});

test('ssl://: a broker whose certificate another CA signed is refused; verifyServer:false opts out', async () => {
  const port = await sslListener(context());
  await expect(
    connect(`ssl://localhost:${port}`, { tls: { caFile: path.join(dir, 'other-ca.pem') } }),
  ).rejects.toThrow(/TLS: .*(self-signed|unable to|certificate)/i);
  // Node's own roots do not know a throwaway CA either: verification is the default.
  await expect(connect(`ssl://localhost:${port}`)).rejects.toThrow(/TLS:/);
  const conn = await connect(`ssl://localhost:${port}`, { tls: { verifyServer: false } });
  await conn.close();
});

test('ssl://: the host name is checked unless verifyHostName=false', async () => {
  const port = await sslListener(context());
  const caFile = path.join(dir, 'ca.pem');
  // The certificate names localhost and 127.0.0.1, not broker.example.
  await expect(
    connect(`ssl://localhost:${port}`, { tls: { caFile, servername: 'broker.example' } }),
  ).rejects.toThrow(/ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
  const conn = await connect(`ssl://localhost:${port}?socket.verifyHostName=false`, {
    tls: { caFile, servername: 'broker.example' },
  });
  await conn.close();
});

test('needClientAuth: a client without a certificate, or with one another CA signed, is refused', async () => {
  const port = await sslListener(context(true));
  const caFile = path.join(dir, 'ca.pem');
  await expect(
    connect(`ssl://localhost:${port}`, { tls: { caFile }, connectTimeoutMs: 5000 }),
  ).rejects.toThrow(MTLS_REFUSED);
  const stranger = await issueCertificate(otherCa, { commonName: 'stranger', usage: 'client' });
  await expect(
    connect(`ssl://localhost:${port}`, {
      tls: { caFile, cert: stranger.cert, key: stranger.key },
      connectTimeoutMs: 5000,
    }),
  ).rejects.toThrow(MTLS_REFUSED);
  const conn = await connect(`ssl://localhost:${port}`, {
    tls: { caFile, certFile: path.join(dir, 'client.pem'), keyFile: path.join(dir, 'client-key.pem') },
  });
  const session = await conn.createSession();
  await session.createProducer('queue://tls.mtls').send(Buffer.from('x'));
  await conn.close();
});

test('reload: open connections keep working, new ones get the new certificate', async () => {
  const certFile = path.join(dir, 'reload.pem');
  const keyFile = path.join(dir, 'reload-key.pem');
  writeFileSync(certFile, server.cert);
  writeFileSync(keyFile, server.key);
  const ctx = new TlsContext({ certFile, keyFile, caFile: null, needClientAuth: false });
  const port = await sslListener(ctx);
  const caFile = path.join(dir, 'ca.pem');
  const before = await servedSerial(port);
  const conn = await connect(`ssl://localhost:${port}`, { tls: { caFile } });
  const session = await conn.createSession();
  const consumer = await session.createConsumer('queue://tls.reload');
  const bodies: string[] = [];
  const two = new Promise<void>((resolve) =>
    consumer.onMessage((m) => {
      bodies.push(m.body.toString());
      if (bodies.length === 2) resolve();
    }),
  );
  await session.createProducer('queue://tls.reload').send(Buffer.from('before'));

  const renewed = await issueCertificate(ca, { commonName: 'localhost', hosts: ['localhost', '127.0.0.1'] });
  writeFileSync(certFile, renewed.cert);
  writeFileSync(keyFile, renewed.key);
  expect(ctx.reload()).toEqual({ servers: 1 });

  // The open connection still works ...
  await session.createProducer('queue://tls.reload').send(Buffer.from('after'));
  await two;
  expect(bodies).toEqual(['before', 'after']);
  // ... and a new one is shown the new certificate.
  const after = await servedSerial(port);
  expect(after).not.toBe(before);
  expect(after).toBe(new X509Certificate(renewed.cert).serialNumber);
  const again = await connect(`ssl://localhost:${port}`, { tls: { caFile } });
  await again.close();
  await conn.close();
});

test('reload: a bad file keeps the previous certificate and says why', async () => {
  const certFile = path.join(dir, 'bad-reload.pem');
  const keyFile = path.join(dir, 'bad-reload-key.pem');
  writeFileSync(certFile, server.cert);
  writeFileSync(keyFile, server.key);
  const ctx = new TlsContext({ certFile, keyFile, caFile: null, needClientAuth: false });
  const port = await sslListener(ctx);
  const before = await servedSerial(port);
  // A key that does not match the certificate.
  writeFileSync(keyFile, client.key);
  expect(() => ctx.reload()).toThrow(/CONFIG_INVALID|do not make a TLS context/);
  expect(await servedSerial(port)).toBe(before);
});

test('bad settings fail with CONFIG_INVALID naming the setting', () => {
  expect(
    () =>
      new TlsContext({
        certFile: path.join(dir, 'nope.pem'),
        keyFile: path.join(dir, 'server-key.pem'),
        caFile: null,
        needClientAuth: false,
      }),
  ).toThrow(/tls\.cert: cannot read/);
  expect(
    () =>
      new TlsContext({
        certFile: path.join(dir, 'server.pem'),
        keyFile: path.join(dir, 'server-key.pem'),
        caFile: null,
        needClientAuth: true,
      }),
  ).toThrow(/tls\.needClientAuth: needs tls\.ca/);
});

test('stomp+ssl://: a STOMP client over TLS gets CONNECTED', async () => {
  const ctx = context();
  const listener = new StompListener({
    broker,
    host: '127.0.0.1',
    port: 0,
    createServer: ctx.createServer.bind(ctx),
  });
  open.push(listener);
  const { port } = await listener.start();
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, servername: 'localhost' });
  const reply = await new Promise<string>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('secureConnect', () => socket.write('CONNECT\naccept-version:1.2\nhost:localhost\n\n\0'));
    socket.on('data', (d) => resolve(d.toString()));
  });
  socket.destroy();
  expect(reply.startsWith('CONNECTED\n')).toBe(true);
});
