/** Plain-text tables for the terminal: a header row, a rule, right-aligned numbers. */

export interface TableColumn<Row> {
  header: string;
  value: (row: Row) => string | number | undefined;
  /** Digits after the point for numbers (default 0). */
  decimals?: number;
}

/** 12345.6 -> "12,346"; NaN or undefined -> "-". */
export function formatNumber(value: number | undefined, decimals = 0): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function cell<Row>(col: TableColumn<Row>, row: Row): { text: string; numeric: boolean } {
  const v = col.value(row);
  if (typeof v === 'number') return { text: formatNumber(v, col.decimals ?? 0), numeric: true };
  return { text: v ?? '-', numeric: false };
}

/** Render rows as aligned columns separated by two spaces; numbers are right-aligned. */
export function formatTable<Row>(columns: readonly TableColumn<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(c, row)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.text.length)));
  const numericCol = columns.map(
    (_, i) => cells.length > 0 && cells.every((r) => r[i]!.numeric || r[i]!.text === '-'),
  );
  const pad = (text: string, i: number, right: boolean) =>
    right ? text.padStart(widths[i]!) : text.padEnd(widths[i]!);
  const lines = [
    columns
      .map((c, i) => pad(c.header, i, numericCol[i]!))
      .join('  ')
      .trimEnd(),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...cells.map((r) =>
      r
        .map((c, i) => pad(c.text, i, numericCol[i]!))
        .join('  ')
        .trimEnd(),
    ),
  ];
  return `${lines.join('\n')}\n`;
}
