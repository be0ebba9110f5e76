/**
 * The drill's timeline as a hand-written SVG (no library): receipts and deliveries per bucket
 * (100 ms) over time, each fault a red vertical line with its label and a shaded band until the
 * new master served. Opens in any browser.
 */

export interface DrillChartMarker {
  /** When the fault happened, ms since the chart's start. */
  atMs: number;
  /** When the new master served, ms since the chart's start (shaded from atMs to here). */
  untilMs?: number;
  /** e.g. "1: kill n1 → n2, 2.1 s". */
  label: string;
}

export interface DrillChartData {
  title: string;
  /** A second line under the title (configuration). */
  subtitle?: string;
  bucketMs: number;
  /** Per bucket, from the chart's start. */
  receipts: readonly number[];
  deliveries: readonly number[];
  markers: readonly DrillChartMarker[];
}

const WIDTH = 1100;
const HEIGHT = 480;
const MARGIN = { left: 70, right: 30, top: 70, bottom: 60 };
const RECEIPT_COLOUR = '#1f77b4';
const DELIVERY_COLOUR = '#2ca02c';
const FAULT_COLOUR = '#d62728';

/** Escapes text for XML character data and attribute values. */
export function xmlEscape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A round step for axis ticks: 1, 2 or 5 times a power of ten, giving about `count` ticks. */
export function niceStep(max: number, count: number): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

export function renderDrillChart(data: DrillChartData): string {
  const buckets = Math.max(data.receipts.length, data.deliveries.length, 1);
  const totalMs = buckets * data.bucketMs;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const peak = Math.max(1, ...data.receipts, ...data.deliveries);
  const yStep = niceStep(peak, 5);
  const yMax = Math.ceil(peak / yStep) * yStep;
  const x = (ms: number) => MARGIN.left + (ms / totalMs) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (v / yMax) * plotH;
  const r = (n: number) => Math.round(n * 10) / 10;

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>${xmlEscape(data.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(
    `<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${xmlEscape(data.title)}</text>`,
  );
  if (data.subtitle) {
    out.push(`<text x="${MARGIN.left}" y="42" fill="#555555">${xmlEscape(data.subtitle)}</text>`);
  }

  // Takeover bands under everything else.
  out.push('<g class="takeovers">');
  for (const m of data.markers) {
    if (m.untilMs === undefined || m.untilMs <= m.atMs) continue;
    out.push(
      `<rect x="${r(x(m.atMs))}" y="${MARGIN.top}" width="${r(Math.max(1, x(m.untilMs) - x(m.atMs)))}" height="${plotH}" fill="${FAULT_COLOUR}" fill-opacity="0.12"/>`,
    );
  }
  out.push('</g>');

  // Axes and grid.
  out.push('<g class="axes" stroke="#cccccc">');
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<line x1="${MARGIN.left}" y1="${r(y(v))}" x2="${MARGIN.left + plotW}" y2="${r(y(v))}"/>`);
  }
  out.push('</g>');
  out.push('<g class="y-labels" text-anchor="end" fill="#333333">');
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<text x="${MARGIN.left - 6}" y="${r(y(v) + 4)}">${fmt(v)}</text>`);
  }
  out.push('</g>');
  const xStepS = niceStep(totalMs / 1000, 10);
  out.push('<g class="x-labels" text-anchor="middle" fill="#333333">');
  for (let s = 0; s * 1000 <= totalMs + 1e-6; s += xStepS) {
    const px = r(x(s * 1000));
    out.push(
      `<line x1="${px}" y1="${MARGIN.top + plotH}" x2="${px}" y2="${MARGIN.top + plotH + 5}" stroke="#333333"/>`,
    );
    out.push(`<text x="${px}" y="${MARGIN.top + plotH + 18}">${fmt(r(s))}</text>`);
  }
  out.push('</g>');
  out.push(
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#333333"/>`,
  );
  out.push(
    `<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}" stroke="#333333"/>`,
  );
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 14}" text-anchor="middle">time (s)</text>`);
  out.push(
    `<text x="18" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 18 ${MARGIN.top + plotH / 2})">messages per ${data.bucketMs} ms</text>`,
  );

  // The two series.
  const line = (series: readonly number[], colour: string, name: string) => {
    const points = series.map((v, i) => `${r(x((i + 0.5) * data.bucketMs))},${r(y(v))}`).join(' ');
    out.push(
      `<polyline class="${name}" fill="none" stroke="${colour}" stroke-width="1.5" stroke-linejoin="round" points="${points}"/>`,
    );
  };
  line(data.receipts, RECEIPT_COLOUR, 'receipts');
  line(data.deliveries, DELIVERY_COLOUR, 'deliveries');

  // Faults: a vertical line each, labels staggered so neighbours do not overlap.
  out.push('<g class="faults">');
  data.markers.forEach((m, i) => {
    const px = r(x(m.atMs));
    const ly = MARGIN.top + 14 + (i % 3) * 14;
    out.push(
      `<line x1="${px}" y1="${MARGIN.top}" x2="${px}" y2="${MARGIN.top + plotH}" stroke="${FAULT_COLOUR}" stroke-width="1.5" stroke-dasharray="5,3"/>`,
    );
    out.push(`<text x="${r(px + 4)}" y="${ly}" fill="${FAULT_COLOUR}">${xmlEscape(m.label)}</text>`);
  });
  out.push('</g>');

  // Legend.
  const lx = WIDTH - MARGIN.right - 300;
  out.push('<g class="legend">');
  out.push(`<line x1="${lx}" y1="54" x2="${lx + 24}" y2="54" stroke="${RECEIPT_COLOUR}" stroke-width="2"/>`);
  out.push(`<text x="${lx + 30}" y="58">receipts</text>`);
  out.push(
    `<line x1="${lx + 100}" y1="54" x2="${lx + 124}" y2="54" stroke="${DELIVERY_COLOUR}" stroke-width="2"/>`,
  );
  out.push(`<text x="${lx + 130}" y="58">deliveries</text>`);
  out.push(
    `<line x1="${lx + 210}" y1="54" x2="${lx + 234}" y2="54" stroke="${FAULT_COLOUR}" stroke-width="1.5" stroke-dasharray="5,3"/>`,
  );
  out.push(`<text x="${lx + 240}" y="58">fault</text>`);
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
