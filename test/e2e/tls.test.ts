/**
 * TLS against real `keel broker` processes (issue #23.1): ssl:// with Keel's client (verified by
 * default; a wrong CA and, with needClientAuth, a missing client certificate are refused),
 * stomp+ssl:// with stomp.py, the admin API over https, a SIGHUP reload that keeps open
 * connections, failover:(ssl://…) through a SIGKILLed master (sent / received / lost /
 * duplicated counted), and a network bridge over ssl://. Certificates: tls/throwaway-certs.ts.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { type Connection, connect } from '@keel/client';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  issueCertificate,
  type PemPair,
} from '@keel/server';
import {
  type BrokerProcess,
  createTestDatabase,
  freePorts,
  stopAll,
  type TestDatabase,
  useTestDatabase,
} from '@keel/testkit';
import { startNode, waitForNewMaster } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import { FAST_FAILOVER_QUERY, runProducer, startConsumer } from './helpers/traffic';

jest.setTimeout(120_000);

const db = useTestDatabase();
const extraDbs: TestDatabase[] = [];
let dir: string;
let ca: CertificateAuthority;
let server: PemPair;
const files = {
  ca: '',
  otherCa: '',
  cert: '',
  key: '',
  clientCert: '',
  clientKey: '',
};
const conns: Connection[] = [];

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keel-e2e-tls-'));
  ca = await createCertificateAuthority('e2e CA');
  const otherCa = await createCertificateAuthority('another CA');
  server = await issueCertificate(ca, { commonName: 'localhost', hosts: ['localhost', '127.0.0.1'] });
  const client = await issueCertificate(ca, { commonName: 'e2e-client', usage: 'client' });
  files.ca = write('ca.pem', ca.cert);
  files.otherCa = write('other-ca.pem', otherCa.cert);
  files.cert = write('server.pem', server.cert);
  files.key = write('server-key.pem', server.key);
  files.clientCert = write('client.pem', client.cert);
  files.clientKey = write('client-key.pem', client.key);
});

afterEach(async () => {
  await Promise.all(conns.splice(0).map((c) => c.close().catch(() => {})));
});

afterAll(async () => {
  await stopAll();
  for (const d of extraDbs) await d.drop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

interface TlsNode {
  proc: BrokerProcess;
  sslPort: number;
  stompSslPort: number;
}

async function startTlsNode(
  o: { cluster: string; name?: string; db?: string; args?: string[]; cert?: string; key?: string },
  role: 'master' | 'slave' = 'master',
): Promise<TlsNode> {
  const [sslPort, stompSslPort] = (await freePorts(2)) as [number, number];
  const proc = await startNode({
    db: o.db ?? db.url,
    cluster: o.cluster,
    name: o.name ?? o.cluster,
    args: [
      '--tls-cert',
      o.cert ?? files.cert,
      '--tls-key',
      o.key ?? files.key,
      '--tls-ca',
      files.ca,
      '--ssl-port',
      String(sslPort),
      '--stomp-ssl-port',
      String(stompSslPort),
      ...(o.args ?? []),
    ],
  });
  await proc.waitForRole(role, 30_000);
  return { proc, sslPort, stompSslPort };
}

async function open(url: string, options: Parameters<typeof connect>[1] = {}): Promise<Connection> {
  const c = await connect(url, { connectTimeoutMs: 5_000, heartbeatMs: 1_000, ...options });
  c.on('error', () => {});
  conns.push(c);
  return c;
}

/** One message through a new consumer on `queue` (a queue of its own: no other consumer takes it). */
async function roundTrip(conn: Connection, queue: string, body: string): Promise<string> {
  const session = await conn.createSession();
  const consumer = await session.createConsumer(`queue://${queue}`);
  const got = new Promise<string>((resolve) => consumer.onMessage((m) => resolve(m.body.toString())));
  await session.createProducer(`queue://${queue}`, { persistent: true }).send(body);
  return got;
}

/** The serial number of the certificate a new TLS connection to `port` is shown. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

function runPython(script: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // Unbuffered (-u): the steps it printed show where a run that had to be killed stood.
    const child = spawn('/usr/bin/python3', ['-u', '-c', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    // Under the suite's CPU load one run printed nothing within 30 s (stop 29).
    const timer = setTimeout(() => {
      out += '[killed after 60 s]';
      child.kill('SIGKILL');
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const STOMP_TLS_PY = `
import logging, sys, threading, stomp
# stomp.py's own warnings (a failed connect attempt, a lost socket) go to stderr, in the output.
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def say(line):
    # One write per line: the listener's thread prints too, and print('a', 'b') writes in pieces.
    sys.stdout.write(line + '\\n')
got = threading.Event()
bodies = []
class L(stomp.ConnectionListener):
    def on_message(self, frame):
        bodies.append(frame.body)
        got.set()
    def on_error(self, frame):
        say('STEP error frame %r %r' % (frame.headers, frame.body))
    def on_disconnected(self):
        say('STEP disconnected')
c = stomp.Connection12([(host, port)])
c.set_ssl(for_hosts=[(host, port)], ca_certs=ca)
c.set_listener('l', L())
say('STEP connecting')
c.connect(wait=True)
say('STEP connected')
c.subscribe('/queue/tls.stomp', id='1', ack='auto')
c.send('/queue/tls.stomp', 'hello over stomp+ssl', headers={'persistent': 'true'})
ok = got.wait(15)
say('STEP received' if ok else 'STEP nothing received')
c.disconnect()
say('RESULT ' + ('ok' if ok and bodies == ['hello over stomp+ssl'] else 'missing %r' % bodies))
`;

test('ssl://: verified with the CA; a wrong CA is refused; stomp+ssl:// with stomp.py; https admin API', async () => {
  const node = await startTlsNode({ cluster: 'tls-basic' });
  // Keel's client: the broker's certificate checks out against the CA.
  const conn = await open(`ssl://localhost:${node.sslPort}`, { tls: { caFile: files.ca } });
  expect(await roundTrip(conn, 'tls.native', 'hello over ssl')).toBe('hello over ssl');
  // Verification is the default: another CA, and Node's own roots, refuse the throwaway certificate.
  await expect(open(`ssl://localhost:${node.sslPort}`, { tls: { caFile: files.otherCa } })).rejects.toThrow(
    /TLS: .*certificate/i,
  );
  await expect(open(`ssl://localhost:${node.sslPort}`)).rejects.toThrow(/TLS:/);

  // stomp.py over TLS, verifying the broker against the CA. One CI run (stop 30) had stomp.py raise
  // ConnectFailedException before CONNECTED; not reproduced in 160 runs under CPU load. A connect
  // that fails so is tried once more, as a client would, and what the first attempt printed (its
  // error frame or disconnect, stomp.py's warnings) and the node's log go to the test's output.
  const stompPy = () => runPython(STOMP_TLS_PY, ['localhost', String(node.stompSslPort), files.ca]);
  let py = await stompPy();
  if (!py.out.includes('STEP connected')) {
    console.log(
      `stomp.py over TLS did not connect; once more. It printed:\n${py.out}\nnode:\n${node.proc.tail(30)}`,
    );
    py = await stompPy();
  }
  expect(py.out).toContain('RESULT ok');

  // The admin API answers https with the node's certificate, and no longer plain http.
  const body = await new Promise<{ status: number; json: { listeners?: Record<string, unknown> } }>(
    (resolve, reject) => {
      https
        .get(`https://localhost:${node.proc.adminPort}/api/broker`, { ca: ca.cert }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        })
        .on('error', reject);
    },
  );
  expect(body.status).toBe(200);
  expect(JSON.stringify(body.json)).toContain('tls-basic');
  expect(body.json.listeners).toMatchObject({
    ssl: `ssl://127.0.0.1:${node.sslPort}`,
    stompSsl: `stomp+ssl://127.0.0.1:${node.stompSslPort}`,
    admin: `https://127.0.0.1:${node.proc.adminPort}`,
  });
  await expect(fetch(`http://127.0.0.1:${node.proc.adminPort}/api/broker`)).rejects.toThrow();
  await node.proc.stop();
});

test('needClientAuth: no client certificate, or one of another CA, is refused; a signed one gets in', async () => {
  const node = await startTlsNode({ cluster: 'tls-mtls', args: ['--need-client-auth'] });
  const url = `ssl://localhost:${node.sslPort}`;
  await expect(open(url, { tls: { caFile: files.ca } })).rejects.toThrow(
    /certificate required|closed the connection during the handshake|TLS:|alert/i,
  );
  const conn = await open(url, {
    tls: { caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey },
  });
  expect(await roundTrip(conn, 'tls.mtls', 'mutual')).toBe('mutual');
  expect(node.proc.logs.some((e) => e.msg === 'TLS handshake failed')).toBe(true);
  await node.proc.stop();
});

test('SIGHUP reloads the certificate: the open connection keeps working, a new one sees the new certificate', async () => {
  const cert = write('reload.pem', server.cert);
  const key = write('reload-key.pem', server.key);
  const node = await startTlsNode({ cluster: 'tls-reload', cert, key });
  const before = await servedSerial(node.sslPort);
  expect(before).toBe(new X509Certificate(server.cert).serialNumber);
  const conn = await open(`ssl://localhost:${node.sslPort}`, { tls: { caFile: files.ca } });
  expect(await roundTrip(conn, 'tls.reload.1', 'before')).toBe('before');

  const renewed = await issueCertificate(ca, { commonName: 'localhost', hosts: ['localhost', '127.0.0.1'] });
  writeFileSync(cert, renewed.cert);
  writeFileSync(key, renewed.key);
  const mark = node.proc.mark();
  node.proc.kill('SIGHUP');
  await node.proc.waitForLog((e) => e.msg === 'TLS certificates reloaded', 10_000, mark);

  expect(await roundTrip(conn, 'tls.reload.2', 'after')).toBe('after');
  expect(await servedSerial(node.sslPort)).toBe(new X509Certificate(renewed.cert).serialNumber);
  const fresh = await open(`ssl://localhost:${node.sslPort}`, { tls: { caFile: files.ca } });
  expect(await roundTrip(fresh, 'tls.reload.3', 'new')).toBe('new');
  expect(node.proc.exitStatus).toBeUndefined();
  await node.proc.stop();
});

test('failover:(ssl://a,ssl://b) through a SIGKILLed master: 0 lost, 0 duplicated', async () => {
  const a = await startTlsNode({ cluster: 'tls-fo', name: 'tls-fo-a' }, 'master');
  const b = await startTlsNode({ cluster: 'tls-fo', name: 'tls-fo-b' }, 'slave');
  const url = `failover:(ssl://localhost:${a.sslPort},ssl://localhost:${b.sslPort})?${FAST_FAILOVER_QUERY}`;
  const options = { tls: { caFile: files.ca }, timeout: 30_000, heartbeatMs: 500, connectTimeoutMs: 2_000 };
  const consumerConn = await open(url, { ...options, clientId: 'tls-fo-consumer' });
  const producerConn = await open(url, { ...options, clientId: 'tls-fo-producer' });
  const ledger = new Ledger();
  const consumer = await startConsumer(consumerConn, 'queue://tls.fo', ledger, 100, 'c1');
  const TOTAL = 1_000;
  let killed = false;
  const newMaster = waitForNewMaster([a.proc, b.proc], a.proc, 60_000);
  const result = await runProducer({
    session: await producerConn.createSession(),
    destination: 'queue://tls.fo',
    name: 'p1',
    count: TOTAL,
    ledger,
    window: 10,
    deadline: Date.now() + 90_000,
    onReceipt: () => {
      if (!killed && ledger.receipted.size >= TOTAL / 2) {
        killed = true;
        a.proc.kill('SIGKILL');
      }
    },
  });
  expect(killed).toBe(true);
  await newMaster;
  await ledger.waitFor(() => ledger.lost().length === 0, 60_000, 'every receipted message delivered');
  const s = ledger.summary();
  // sent / received / lost / duplicated
  console.log(
    `failover over ssl://: sent ${result.receipted}, received ${s.distinctDelivered}, lost ${s.lost}, duplicated ${s.duplicates}, failed sends ${result.failed}`,
  );
  expect(result.receipted).toBe(TOTAL);
  expect(s.lost).toBe(0);
  expect(s.duplicates).toBe(0);
  expect(s.corrupt + s.unknown).toBe(0);
  // The client stayed on ssl:// (the announced tcp:// URLs are not for a TLS client).
  expect(producerConn.url.startsWith('ssl://')).toBe(true);
  await consumer.close();
});

test('a network bridge over ssl://: messages sent on A reach a consumer on B', async () => {
  const dbB = await createTestDatabase();
  extraDbs.push(dbB);
  const B = await startTlsNode({ cluster: 'tls-net-b', db: dbB.url });
  const A = await startTlsNode({
    cluster: 'tls-net-a',
    args: ['--network-connector', `static:(ssl://localhost:${B.sslPort})`],
  });
  const onB = await open(`ssl://localhost:${B.sslPort}`, { tls: { caFile: files.ca } });
  const ledger = new Ledger();
  const consumer = await startConsumer(onB, 'queue://tls.net', ledger, 100, 'b1');
  // The bridge links once B's consumer is known to A (demand forwarding).
  await A.proc.waitForLog((e) => e.msg === 'network bridge connected', 30_000);
  const onA = await open(`ssl://localhost:${A.sslPort}`, { tls: { caFile: files.ca } });
  const result = await runProducer({
    session: await onA.createSession(),
    destination: 'queue://tls.net',
    name: 'pa',
    count: 200,
    ledger,
    window: 10,
    deadline: Date.now() + 60_000,
  });
  await ledger.waitFor(() => ledger.lost().length === 0, 60_000, 'every message across the bridge');
  const s = ledger.summary();
  console.log(
    `bridge over ssl://: sent ${result.receipted}, received ${s.distinctDelivered}, lost ${s.lost}, duplicated ${s.duplicates}, failed sends ${JSON.stringify(result.errors)}`,
  );
  expect(result.receipted).toBe(200);
  expect(s.lost).toBe(0);
  expect(s.duplicates).toBe(0);
  await consumer.close();
});
