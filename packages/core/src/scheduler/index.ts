export * from './message-scheduler';
export * from './schedule-headers';
export * from './schedule-plan';
