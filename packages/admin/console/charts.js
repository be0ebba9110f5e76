// Charts: a tiny SVG sparkline per table row (cheap for thousands of rows) and uPlot for the
// larger time series.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './html.js';

export function Sparkline({ values, width = 100, height = 22 }) {
  const pts = (values ?? []).filter((v) => v !== null && v !== undefined);
  if (pts.length < 2) return html`<svg class="spark" width=${width} height=${height}></svg>`;
  const max = Math.max(...pts);
  const min = Math.min(...pts);
  const span = max - min || 1;
  const step = width / (pts.length - 1);
  const d = pts
    .map(
      (v, i) =>
        `${i === 0 ? 'M' : 'L'}${(i * step).toFixed(1)},${(height - 2 - ((v - min) / span) * (height - 4)).toFixed(1)}`,
    )
    .join('');
  return html`<svg class="spark" width=${width} height=${height} viewBox="0 0 ${width} ${height}"><path d=${d} /></svg>`;
}

/** A uPlot chart of `series` ([{label, values, color}]) against `t` (seconds). */
export function Chart({ t, series, height = 180, title }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = [t.slice(), ...series.map((s) => s.values.slice())];
  const enough = t.length >= 2;
  useEffect(() => {
    if (!enough) return undefined;
    const width = Math.max(300, box.current.clientWidth || 600);
    plot.current = new uPlot(
      {
        title,
        width,
        height,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, spanGaps: true }))],
        axes: [{}, { size: 60 }],
        legend: { live: false },
        cursor: { show: false },
      },
      data,
      box.current,
    );
    return () => plot.current.destroy();
  }, [enough, series.map((s) => s.label).join('|')]);
  useEffect(() => {
    plot.current?.setData(data);
  });
  if (!enough) return html`<div class="chart pending muted">Collecting points…</div>`;
  return html`<div class="chart" ref=${box}></div>`;
}
