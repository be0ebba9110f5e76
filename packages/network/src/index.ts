export * from './advisory-publisher';
export * from './connector-config';
export * from './demand-forwarding-bridge';
export * from './duplex';
export * from './forwarding-link';
export * from './multicast-discovery';
export * from './network-service';
