/** Plain-text tables and durations for the admin commands' human output. */

export type Cell = string | number | null | undefined;

export interface TableOptions {
  /** Columns aligned right (numbers); by index. */
  right?: readonly number[];
  /** What to print for null/undefined. */
  empty?: string;
}

/** A table with a header row, columns separated by two spaces, no trailing blanks. */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly Cell[])[],
  options: TableOptions = {},
): string {
  const empty = options.empty ?? '-';
  const right = new Set(options.right ?? []);
  const cells = [headers.map(String), ...rows.map((r) => headers.map((_, i) => cellText(r[i], empty)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] as string).length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (right.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** `label  value` lines with the labels padded to one width. */
export function formatFields(fields: readonly (readonly [string, Cell])[], empty = '-'): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${cellText(v, empty)}\n`).join('');
}

function cellText(value: Cell, empty: string): string {
  if (value === null || value === undefined || value === '') return empty;
  return String(value);
}

/** `3d 4h`, `2h 5m`, `4m 12s`, `42s`, `350ms`: the two largest units. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  const units: [string, number][] = [
    ['d', Math.floor(s / 86_400)],
    ['h', Math.floor(s / 3600) % 24],
    ['m', Math.floor(s / 60) % 60],
    ['s', s % 60],
  ];
  const first = units.findIndex(([, n]) => n > 0);
  return units
    .slice(first, first + 2)
    .filter(([, n], i) => i === 0 || n > 0)
    .map(([u, n]) => `${n}${u}`)
    .join(' ');
}

/** `1.5 KiB`, `12 B`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/**
 * One line of a body for a table: control characters escaped (`\n`, `\t`, `\x01`), cut at
 * `maxChars` with `...` (also when the server already cut the preview).
 */
export function previewLine(text: string, maxChars: number, truncated = false): string {
  const escaped = text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
  const chars = Array.from(escaped);
  if (chars.length > maxChars) return `${chars.slice(0, Math.max(0, maxChars - 3)).join('')}...`;
  return truncated ? `${escaped}...` : escaped;
}
