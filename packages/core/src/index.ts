export * from './store/store';
