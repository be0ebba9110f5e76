#!/usr/bin/env node
// The `keel` command. A committed file, so `npm ci` links it (node_modules/.bin/keel, `npx keel`)
// before anything is built; it runs the built CLI (`npm run build` first).
try {
  require.resolve('../dist/main.js');
} catch {
  process.stderr.write('keel: the CLI is not built yet: run `npm run build` (or `npm start`) first\n');
  process.exit(1);
}
require('../dist/main.js');
