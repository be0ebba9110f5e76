/**
 * Values sampled over time as a hand-written SVG (no library): one panel per quantity stacked
 * vertically (each with its own y axis and unit), one line per series, fault markers as red
 * vertical lines across every panel. The soak's resources chart (broker RSS, dead tuples, table
 * size over time).
 */
import { niceStep, xmlEscape } from './drill-chart';

export interface SeriesPanel {
  title: string;
  unit: string;
  series: { name: string; points: readonly { atMs: number; value: number }[] }[];
}

export interface SeriesChartData {
  title: string;
  subtitle?: string;
  /** Length of the x axis, ms. */
  durationMs: number;
  panels: readonly SeriesPanel[];
  markers: readonly { atMs: number; label: string }[];
}

const WIDTH = 1100;
const PANEL_HEIGHT = 200;
const MARGIN = { left: 90, right: 160, top: 80, bottom: 56, gap: 40 };
const COLOURS = ['#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];
const FAULT_COLOUR = '#d62728';

export function renderSeriesChart(data: SeriesChartData): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const height = MARGIN.top + data.panels.length * (PANEL_HEIGHT + MARGIN.gap) - MARGIN.gap + MARGIN.bottom;
  const x = (ms: number) => MARGIN.left + (plotW * ms) / Math.max(1, data.durationMs);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${xmlEscape(data.title)}</text>`,
  ];
  if (data.subtitle) out.push(`<text x="${MARGIN.left}" y="44">${xmlEscape(data.subtitle)}</text>`);
  data.panels.forEach((panel, p) => {
    const top = MARGIN.top + p * (PANEL_HEIGHT + MARGIN.gap);
    const max = Math.max(1, ...panel.series.flatMap((s) => s.points.map((pt) => pt.value)));
    const step = niceStep(max, 4);
    const yMax = Math.ceil(max / step) * step;
    const y = (v: number) => top + PANEL_HEIGHT - (PANEL_HEIGHT * v) / yMax;
    out.push(
      `<text x="${MARGIN.left}" y="${top - 8}" font-weight="bold">${xmlEscape(`${panel.title} (${panel.unit})`)}</text>`,
      `<rect x="${MARGIN.left}" y="${top}" width="${plotW}" height="${PANEL_HEIGHT}" fill="none" stroke="#999"/>`,
    );
    for (let v = 0; v <= yMax + 1e-9; v += step) {
      out.push(
        `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`,
        `<text x="${MARGIN.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${xmlEscape(formatValue(v))}</text>`,
      );
    }
    panel.series.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length];
      if (s.points.length > 0) {
        const d = s.points
          .map((pt, j) => `${j === 0 ? 'M' : 'L'}${x(pt.atMs).toFixed(1)},${y(pt.value).toFixed(1)}`)
          .join(' ');
        out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
      }
      out.push(
        `<text x="${MARGIN.left + plotW + 10}" y="${top + 16 + i * 16}" fill="${colour}">${xmlEscape(s.name)}</text>`,
      );
    });
    for (const m of data.markers) {
      out.push(
        `<line x1="${x(m.atMs).toFixed(1)}" x2="${x(m.atMs).toFixed(1)}" y1="${top}" y2="${top + PANEL_HEIGHT}" stroke="${FAULT_COLOUR}" stroke-dasharray="3,3"/>`,
      );
    }
  });
  const bottom = height - MARGIN.bottom;
  const minutes = data.durationMs / 60_000;
  const tick = niceStep(minutes, 10);
  for (let m = 0; m <= minutes + 1e-9; m += tick) {
    out.push(
      `<text x="${x(m * 60_000).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${formatValue(m)} min</text>`,
    );
  }
  for (const m of data.markers) {
    out.push(
      `<text x="${x(m.atMs).toFixed(1)}" y="${bottom + 34}" fill="${FAULT_COLOUR}" font-size="10" text-anchor="middle">${xmlEscape(m.label)}</text>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function formatValue(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1);
}
