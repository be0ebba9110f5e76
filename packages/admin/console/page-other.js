// Connections and consumers, network bridges, and the store as Postgres sees it.
import { bytes, duration, num, time } from './format.js';
import { html } from './html.js';
import { Facts, Notice, Table } from './ui.js';

export function ConnectionsPage({ s, now }) {
  const slave = s.node.readOnly;
  return html`<section>
    <h1>Connections <span class="muted">${s.connections.length}</span></h1>
    ${slave ? html`<${Notice}>A node that is not the serving master has no client connections.</${Notice}>` : null}
    <${Table}
      id="connections"
      rows=${s.connections}
      rowKey=${(c) => c.id}
      empty="No client connections."
      columns=${[
        { key: 'clientId', label: 'Client id' },
        { key: 'protocol', label: 'Protocol' },
        { key: 'username', label: 'User' },
        { key: 'remoteAddress', label: 'Remote address' },
        {
          key: 'connectedAt',
          label: 'Connected for',
          value: (c) => Date.parse(c.connectedAt),
          render: (c) => duration(now - Date.parse(c.connectedAt)),
        },
        { key: 'consumers', label: 'Consumers', num: true, render: (c) => num(c.consumers) },
        { key: 'messagesIn', label: 'In', num: true, render: (c) => num(c.messagesIn) },
        { key: 'messagesOut', label: 'Out', num: true, render: (c) => num(c.messagesOut) },
      ]}
    />
    <h1>Consumers <span class="muted">${s.consumers.length}</span></h1>
    <${Table}
      id="consumers"
      rows=${s.consumers}
      rowKey=${(c) => `${c.connectionId}/${c.consumerId}`}
      empty="No consumers."
      columns=${[
        { key: 'clientId', label: 'Client id' },
        { key: 'consumerId', label: 'Consumer' },
        { key: 'destinations', label: 'Destinations', value: (c) => c.destinations.join(', ') },
        { key: 'credit', label: 'Credit', num: true, render: (c) => num(c.credit) },
        { key: 'inflight', label: 'In flight', num: true, render: (c) => num(c.inflight) },
        { key: 'delivered', label: 'Delivered', num: true, render: (c) => num(c.delivered) },
      ]}
    />
  </section>`;
}

export function BridgesPage({ s }) {
  return html`<section>
    <h1>Network bridges <span class="muted">${s.bridges.length}</span></h1>
    <${Table}
      id="bridges"
      rows=${s.bridges}
      rowKey=${(b) => `${b.connector}/${b.peerUrl}/${b.remoteName ?? ''}`}
      empty="No network connectors on this node."
      columns=${[
        { key: 'connector', label: 'Connector' },
        { key: 'peerUrl', label: 'Peer' },
        { key: 'remoteName', label: 'Remote broker' },
        {
          key: 'state',
          label: 'State',
          render: (b) => html`<span class=${`badge state-${b.state}`}>${b.state}</span>`,
        },
        {
          key: 'forwarding',
          label: 'Demand (forwarding)',
          value: (b) => b.forwarding.length,
          render: (b) => b.forwarding.join(', ') || '—',
        },
        { key: 'forwarded', label: 'Forwarded', num: true, render: (b) => num(b.forwarded) },
        { key: 'received', label: 'Received', num: true, render: (b) => num(b.received) },
        { key: 'inflight', label: 'In flight', num: true, render: (b) => num(b.inflight) },
        { key: 'connects', label: 'Connects', num: true, render: (b) => num(b.connects) },
        { key: 'lastError', label: 'Last error', render: (b) => b.lastError ?? '' },
      ]}
    />
  </section>`;
}

export function StorePage({ s }) {
  const st = s.store;
  const tables = st ? Object.keys(st.tableBytes).sort() : [];
  return html`<section>
    <h1>Store</h1>
    ${s.errors.store ? html`<${Notice} kind="error">Store health could not be read: ${s.errors.store}</${Notice}>` : null}
    <h2>Postgres hosts</h2>
    <${Table}
      id="pools"
      rows=${s.node.postgres ?? []}
      rowKey=${(p) => p.name}
      empty="No Postgres pool reported."
      columns=${[
        { key: 'name', label: 'Pool' },
        { key: 'current', label: 'Current host', render: (p) => p.current ?? 'none' },
        { key: 'hosts', label: 'Host list', value: (p) => p.hosts.join(', ') },
        { key: 'target', label: 'target_session_attrs' },
        {
          key: 'rejected',
          label: 'Passed over',
          value: (p) =>
            Object.entries(p.rejected)
              .map(([h, why]) => `${h}: ${why}`)
              .join('; ') || '',
        },
      ]}
    />
    <h2>Tables</h2>
    ${
      st
        ? html`<${Facts} items=${[
            [
              'Oldest open transaction',
              st.oldestTransactionAgeSeconds === null
                ? 'none open'
                : duration(st.oldestTransactionAgeSeconds * 1000),
            ],
          ]} />
          <p class="muted small">An old open transaction in the store database holds back xmin: VACUUM cannot remove rows deleted after it began, and dead rows pile up.</p>
          <table id="store-tables"><thead><tr><th>Table</th><th class="num">Size</th><th class="num">Live rows</th><th class="num">Dead rows</th></tr></thead>
          <tbody>${tables.map((t) => html`<tr key=${t}><td>${t}</td><td class="num">${bytes(st.tableBytes[t])}</td><td class="num">${num(st.liveRows?.[t])}</td><td class="num">${num(st.deadRows[t])}</td></tr>`)}</tbody></table>
          <p class="muted small">Read ${time(s.at)}, every few seconds (the same figures as keel_store_* in /metrics).</p>`
        : html`<p class="muted">Not read yet.</p>`
    }
  </section>`;
}
