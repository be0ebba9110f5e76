export {};
export * from './migrate';
export * from './pg-errors';
export * from './pg-store';
export * from './copy-binary';
export * from './row-locker';
export * from './lease-locker';
