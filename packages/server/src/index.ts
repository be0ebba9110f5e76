export {};
export * from './config';
export * from './logger';
