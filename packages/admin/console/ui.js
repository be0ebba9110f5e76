// Shared pieces: a sortable, filterable, paginated table (thousands of rows render one page at a
// time), badges and notices.
import { useState } from 'preact/hooks';
import { html } from './html.js';

export const PAGE_SIZE = 50;

/**
 * columns: [{ key, label, value(row) -> sortable value, render(row) -> content, num: bool }]
 * Only the current page is rendered, so 10,000 destinations cost one sort, not 10,000 rows.
 */
export function Table({
  rows,
  columns,
  rowKey,
  empty = 'Nothing here.',
  initialSort,
  pageSize = PAGE_SIZE,
  id,
}) {
  const [sort, setSort] = useState(initialSort ?? { key: columns[0].key, desc: false });
  const [page, setPage] = useState(0);
  const col = columns.find((c) => c.key === sort.key) ?? columns[0];
  const value = col.value ?? ((r) => r[col.key]);
  const sorted = rows.slice().sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
    return sort.desc ? -c : c;
  });
  const pages = Math.max(1, Math.ceil(sorted.length / pageSize));
  const current = Math.min(page, pages - 1);
  const shown = sorted.slice(current * pageSize, (current + 1) * pageSize);
  const header = (c) => {
    const active = c.key === sort.key;
    const click = () => setSort({ key: c.key, desc: active ? !sort.desc : !!c.num });
    return html`<th class=${c.num ? 'num' : ''} aria-sort=${active ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button class="sort" onClick=${click}>${c.label}${active ? (sort.desc ? ' ▼' : ' ▲') : ''}</button>
    </th>`;
  };
  return html`<div class="table-wrap" id=${id}>
    <table>
      <thead><tr>${columns.map(header)}</tr></thead>
      <tbody>
        ${shown.length === 0 ? html`<tr><td class="empty" colspan=${columns.length}>${empty}</td></tr>` : null}
        ${shown.map(
          (r) => html`<tr key=${rowKey(r)} data-row=${rowKey(r)}>
            ${columns.map((c) => html`<td class=${c.num ? 'num' : ''}>${c.render ? c.render(r) : String((c.value ? c.value(r) : r[c.key]) ?? '—')}</td>`)}
          </tr>`,
        )}
      </tbody>
    </table>
    ${
      sorted.length > pageSize
        ? html`<div class="pager">
            <button disabled=${current === 0} onClick=${() => setPage(current - 1)}>‹ Previous</button>
            <span>${current * pageSize + 1}–${Math.min(sorted.length, (current + 1) * pageSize)} of ${sorted.length.toLocaleString('en-US')}</span>
            <button disabled=${current >= pages - 1} onClick=${() => setPage(current + 1)}>Next ›</button>
          </div>`
        : null
    }
  </div>`;
}

export function RoleBadge({ role }) {
  return html`<span class=${`badge role-${role}`}>${role}</span>`;
}

export function Notice({ kind = 'info', children }) {
  return html`<div class=${`notice ${kind}`} role=${kind === 'error' ? 'alert' : 'status'}>${children}</div>`;
}

/** Label/value pairs. */
export function Facts({ items }) {
  return html`<dl class="facts">
    ${items.map(([k, v]) => html`<div><dt>${k}</dt><dd>${v}</dd></div>`)}
  </dl>`;
}

export function Filter({ value, onInput, placeholder }) {
  return html`<input class="filter" type="search" placeholder=${placeholder} value=${value}
    onInput=${(e) => onInput(e.currentTarget.value)} aria-label=${placeholder} />`;
}
