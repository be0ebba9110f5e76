import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { bufferOutput } from './output';
import { buildProgram } from './program';

/** The synopsis block of the README's "The CLI" section. */
function synopsis(): string {
  const readme = readFileSync(path.resolve(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The CLI'));
  const start = section.indexOf('```\n') + 4;
  return section.slice(start, section.indexOf('```', start));
}

/** Each `keel a | b …` entry of the synopsis (with its continuation lines) by command name. */
function entries(): Map<string, string> {
  const byCommand = new Map<string, string>();
  for (const entry of synopsis().split(/\n(?=keel )/)) {
    const names = /^keel ([a-z][a-z-]*(?: \| [a-z]+(?: [A-Z])?)*)/.exec(entry)?.[1] ?? '';
    for (const name of names.split(' | ')) byCommand.set(name.split(' ')[0] as string, entry);
  }
  return byCommand;
}

describe('README CLI synopsis', () => {
  const program = buildProgram({ output: bufferOutput(), exitOverride: true });
  const commands = program.commands.filter((c) => c.name() !== 'help');

  it('has an entry for every command', () => {
    expect([...entries().keys()].sort()).toEqual(commands.map((c) => c.name()).sort());
  });

  it('names every flag of every command (broker: the Configuration table), and no flag that does not exist', () => {
    const lines = entries();
    for (const command of commands) {
      const entry = lines.get(command.name()) as string;
      const flags = command.options.map((o) => o.long as string);
      const shown = [...entry.matchAll(/--[a-z-]+/g)].map((m) => m[0]);
      for (const flag of shown)
        expect({ command: command.name(), flag, known: flags.includes(flag) }).toEqual({
          command: command.name(),
          flag,
          known: true,
        });
      if (['broker', 'bench'].includes(command.name())) continue; // broker: the table; bench: its own --help
      for (const flag of flags)
        expect({ command: command.name(), flag, shown: shown.includes(flag) }).toEqual({
          command: command.name(),
          flag,
          shown: true,
        });
    }
  });
});
