/** The TLS settings of loadConfig: flags, KEEL_* variables and the file's `tls:` group. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_SSL_PORT, DEFAULT_STOMP_SSL_PORT, loadConfig } from '../config';

const DB = 'postgres://keel@127.0.0.1:5432/keel';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'keel-tls-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('no TLS by default: no ssl listeners, http admin', () => {
  const cfg = loadConfig({ argv: { db: DB }, env: {} });
  expect(cfg.tls).toBeNull();
  expect(cfg.sslPort).toBe(false);
  expect(cfg.stompSslPort).toBe(false);
});

test('--tls-cert and --tls-key turn on ssl:// (61617) and stomp+ssl:// (61612), https admin', () => {
  const cfg = loadConfig({ argv: { db: DB, tlsCert: 'a.pem', tlsKey: 'a-key.pem' }, env: {} });
  expect(cfg.tls).toEqual({
    certFile: 'a.pem',
    keyFile: 'a-key.pem',
    caFile: null,
    needClientAuth: false,
    adminHttps: true,
  });
  expect([cfg.sslPort, cfg.stompSslPort]).toEqual([DEFAULT_SSL_PORT, DEFAULT_STOMP_SSL_PORT]);
});

test('KEEL_* variables and the file group tls: {cert, key, ca, needClientAuth, adminHttps}', () => {
  const env = {
    KEEL_TLS_CERT: 'e.pem',
    KEEL_TLS_KEY: 'e-key.pem',
    KEEL_TLS_CA: 'ca.pem',
    KEEL_NEED_CLIENT_AUTH: 'true',
    KEEL_SSL_PORT: '7001',
    KEEL_STOMP_SSL_PORT: 'false',
  };
  const fromEnv = loadConfig({ argv: { db: DB }, env });
  expect(fromEnv.tls).toMatchObject({ certFile: 'e.pem', caFile: 'ca.pem', needClientAuth: true });
  expect([fromEnv.sslPort, fromEnv.stompSslPort]).toEqual([7001, false]);
  const file = path.join(dir, 'keel.yaml');
  writeFileSync(
    file,
    'sslPort: 7002\ntls:\n  cert: f.pem\n  key: f-key.pem\n  ca: f-ca.pem\n  needClientAuth: true\n  adminHttps: false\n',
  );
  const fromFile = loadConfig({ argv: { db: DB, config: file }, env: {} });
  expect(fromFile.tls).toEqual({
    certFile: 'f.pem',
    keyFile: 'f-key.pem',
    caFile: 'f-ca.pem',
    needClientAuth: true,
    adminHttps: false,
  });
  expect(fromFile.sslPort).toBe(7002);
});

test('refused: a cert without its key, ssl ports or needClientAuth without TLS, needClientAuth without a CA, port clashes', () => {
  expect(() => loadConfig({ argv: { db: DB, tlsCert: 'a.pem' }, env: {} })).toThrow(
    /tls\.key: is required with the other/,
  );
  expect(() => loadConfig({ argv: { db: DB, sslPort: '7003' }, env: {} })).toThrow(
    /sslPort: needs tls\.cert and tls\.key/,
  );
  expect(() => loadConfig({ argv: { db: DB, needClientAuth: true }, env: {} })).toThrow(
    /tls\.needClientAuth: needs tls\.cert/,
  );
  expect(() =>
    loadConfig({ argv: { db: DB, tlsCert: 'a', tlsKey: 'b', needClientAuth: true }, env: {} }),
  ).toThrow(/tls\.needClientAuth: needs tls\.ca/);
  expect(() =>
    loadConfig({ argv: { db: DB, tlsCert: 'a', tlsKey: 'b', sslPort: '61616' }, env: {} }),
  ).toThrow(/sslPort: must differ from port/);
});
