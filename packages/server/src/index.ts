export * from './config';
export * from './logger';
export * from './native/native-listener';
export * from './node';
export * from './node-registry';
export * from './shared-store-postgres';
export * from './stomp/stomp-listener';
export * from './stray-pg-errors';
