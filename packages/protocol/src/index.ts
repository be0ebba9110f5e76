export * from './errors';
export * from './destination';
export * from './message';
export * from './native/frames';
