import { readFileSync } from 'node:fs';
import { transformSync } from '@swc/core';

/**
 * Load a single-file ESM-only package (no imports of its own) as CommonJS, for jest on Node 20.
 *
 * fastify.inject (light-my-request -> cookie@2) and @fastify/swagger-ui (@fastify/static ->
 * content-disposition@3) require ESM-only packages. Node 20.19+ loads them with require(esm), but
 * jest's module registry cannot (jest supports require(esm) from Node 24.9). Use as
 * `jest.mock('cookie', () => require('./__tests__/esm-interop').esmAsCommonJs('cookie'))`.
 * The root jest.config.js could instead transform these two packages with swc.
 */
export function esmAsCommonJs(packageName: string): unknown {
  const file = require.resolve(packageName);
  const { code } = transformSync(readFileSync(file, 'utf8'), {
    filename: file,
    jsc: { target: 'es2022', parser: { syntax: 'ecmascript' } },
    module: { type: 'commonjs' },
  });
  const mod = { exports: {} as Record<string, unknown> };
  new Function('module', 'exports', 'require', code)(mod, mod.exports, require);
  return mod.exports;
}
