export * from './broker-process';
export * from './fault-proxy';
export * from './free-port';
export * from './postgres-pair';
export * from './postgres-server';
export * from './store-conformance';
export * from './test-database';
export * from './test-env';
