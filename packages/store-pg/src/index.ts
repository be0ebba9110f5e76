export * from './copy-binary';
export * from './host-selection';
export * from './lease-locker';
export * from './migrate';
export * from './pg-errors';
export * from './pg-store';
export * from './pg-url';
export * from './row-locker';
