export * from './advisory-publisher';
export * from './connector-config';
export * from './demand-forwarding-bridge';
export * from './network-service';
