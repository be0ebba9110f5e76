// Queues and topics: live counters, rates from the counters' change between ticks, sparklines,
// sorting and a name filter over any number of destinations.
import { useState } from 'preact/hooks';
import { Sparkline } from './charts.js';
import { duration, num, rate } from './format.js';
import { html } from './html.js';
import { live } from './live.js';
import { Filter, Table } from './ui.js';

const last = (arr) => (arr && arr.length > 0 ? arr[arr.length - 1] : null);

function matcher(text) {
  const t = text.trim().toLowerCase();
  return t ? (name) => name.toLowerCase().includes(t) : () => true;
}

export function QueuesPage({ s, now }) {
  const [filter, setFilter] = useState('');
  const match = matcher(filter);
  const rows = s.queues.filter((q) => match(q.name));
  const h = (q) => live.queueHistory.get(q.name);
  return html`<section>
    <h1>Queues <span class="muted">${s.queues.length.toLocaleString('en-US')}</span></h1>
    <${Filter} value=${filter} onInput=${setFilter} placeholder="Filter queues by name" />
    <${Table}
      id="queues"
      rows=${rows}
      rowKey=${(q) => q.name}
      empty=${filter ? 'No queue matches.' : 'No queues yet.'}
      columns=${[
        {
          key: 'name',
          label: 'Queue',
          render: (q) => html`<a class="dest" href=${`#/queue/${encodeURIComponent(q.name)}`}>${q.name}</a>`,
        },
        { key: 'depth', label: 'Depth', num: true, render: (q) => num(q.depth) },
        {
          key: 'trend',
          label: 'Depth, 2 min',
          value: (q) => q.depth,
          render: (q) => html`<${Sparkline} values=${h(q)?.depth} />`,
        },
        {
          key: 'enqRate',
          label: 'In',
          num: true,
          value: (q) => last(h(q)?.enqRate),
          render: (q) => rate(last(h(q)?.enqRate)),
        },
        {
          key: 'deqRate',
          label: 'Out',
          num: true,
          value: (q) => last(h(q)?.deqRate),
          render: (q) => rate(last(h(q)?.deqRate)),
        },
        { key: 'consumers', label: 'Consumers', num: true, render: (q) => num(q.consumers) },
        { key: 'inflight', label: 'In flight', num: true, render: (q) => num(q.inflight) },
        {
          key: 'oldest',
          label: 'Oldest',
          num: true,
          value: (q) => (q.oldestMessageAt === null ? null : now - q.oldestMessageAt),
          render: (q) => (q.oldestMessageAt === null ? '—' : duration(now - q.oldestMessageAt)),
        },
        { key: 'enqueued', label: 'Enqueued', num: true, render: (q) => num(q.enqueued) },
        { key: 'deadLettered', label: 'DLQ’d', num: true, render: (q) => num(q.deadLettered) },
      ]}
    />
  </section>`;
}

export function TopicsPage({ s }) {
  const [filter, setFilter] = useState('');
  const match = matcher(filter);
  const rows = s.topics.filter((t) => match(t.name));
  const h = (t) => live.topicHistory.get(t.name);
  return html`<section>
    <h1>Topics <span class="muted">${s.topics.length.toLocaleString('en-US')}</span></h1>
    <${Filter} value=${filter} onInput=${setFilter} placeholder="Filter topics by name" />
    <${Table}
      id="topics"
      rows=${rows}
      rowKey=${(t) => t.name}
      empty=${filter ? 'No topic matches.' : 'No topics yet.'}
      columns=${[
        {
          key: 'name',
          label: 'Topic',
          render: (t) => html`<a class="dest" href=${`#/topic/${encodeURIComponent(t.name)}`}>${t.name}</a>`,
        },
        { key: 'enqueued', label: 'Published', num: true, render: (t) => num(t.enqueued) },
        {
          key: 'trend',
          label: 'Published, 2 min',
          value: (t) => t.enqueued,
          render: (t) => html`<${Sparkline} values=${h(t)?.enqRate} />`,
        },
        {
          key: 'rate',
          label: 'In',
          num: true,
          value: (t) => last(h(t)?.enqRate),
          render: (t) => rate(last(h(t)?.enqRate)),
        },
        { key: 'subscribers', label: 'Subscribers', num: true, render: (t) => num(t.subscribers) },
        {
          key: 'durableSubscriptions',
          label: 'Durable',
          num: true,
          render: (t) => num(t.durableSubscriptions),
        },
      ]}
    />
  </section>`;
}
