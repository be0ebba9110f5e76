/** Jest runs the TypeScript sources directly (swc), so tests need no build; tests that spawn real
 * broker processes use the built CLI (`npm test` builds first). */
const swc = ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }];
module.exports = {
  testEnvironment: 'node',
  // cookie@2 and content-disposition@3 (fastify inject, swagger-ui) ship ESM only: let swc turn them
  // into CommonJS for jest's module system.
  transform: { '^.+\\.ts$': swc, '/node_modules/(cookie|content-disposition)/.+\\.js$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(cookie|content-disposition)/)'],
  moduleNameMapper: { '^@keel/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts' },
  testMatch: ['<rootDir>/packages/*/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  testTimeout: 60000,
  maxWorkers: 2,
  globalSetup: '<rootDir>/packages/testkit/src/jest-global-setup.ts',
  globalTeardown: '<rootDir>/packages/testkit/src/jest-global-teardown.ts',
};
