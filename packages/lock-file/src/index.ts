export * from './file-locker';
