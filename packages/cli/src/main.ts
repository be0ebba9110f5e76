#!/usr/bin/env node
import { buildProgram } from './program';
/** The `keel` executable: parses the command line and reports errors; everything else is in program.ts. */
import { reportError } from './report-error';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.exitCode = reportError(err, (text) => process.stderr.write(text));
  });
