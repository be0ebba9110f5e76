export * from './admin-auth';
export * from './admin-context';
export {
  DEFAULT_BROWSE_LIMIT,
  DEFAULT_PREVIEW_BYTES,
  DEFAULT_TAKEOVER_LIMIT,
  MAX_BROWSE_LIMIT,
  MAX_BROWSE_OFFSET,
  MAX_PREVIEW_BYTES,
} from './admin-schemas';
export * from './admin-server';
export * from './fastify-logger';
export * from './keel-metrics';
export * from './message-view';
export * from './store-read-only-view';
