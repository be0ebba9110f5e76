export { type BrokerOptions, runBroker } from './commands/broker';
export { type MigrateCommandResult, type MigrateOptions, runMigrate } from './commands/migrate';
export { DEFAULT_START_DIR, runStart, type StartOptions } from './commands/start';
export { type LocalPostgres, type LocalPostgresOptions, startLocalPostgres } from './local-postgres';
export { bufferOutput, type Output, processOutput } from './output';
export { type BuildProgramOptions, buildProgram, type CommandActions, VERSION } from './program';
