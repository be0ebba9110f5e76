export * from './copy-binary';
export * from './lease-locker';
export * from './migrate';
export * from './pg-errors';
export * from './pg-store';
export * from './row-locker';
