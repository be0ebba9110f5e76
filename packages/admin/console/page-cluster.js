// The cluster: every node, who holds the lock at which epoch, and the takeovers over time.
import { Chart } from './charts.js';
import { duration, safeHref, time } from './format.js';
import { html } from './html.js';
import { live } from './live.js';
import { Facts, RoleBadge, Table } from './ui.js';

export function ClusterPage({ s, now }) {
  const n = s.node;
  const c = s.cluster;
  const current = c.takeovers[0];
  const locker = n.locker ?? {};
  return html`<section>
    <h1>Cluster <span class="muted">${c.cluster}</span></h1>
    <div class="cards">
      <div class="card">
        <h2>This node</h2>
        <${Facts} items=${[
          ['Name', n.name],
          ['Role', html`<${RoleBadge} role=${n.role} />`],
          ['Cluster epoch', String(c.epoch)],
          ['Served at epoch', n.nodeEpoch === null ? 'never master' : String(n.nodeEpoch)],
          ['Uptime', duration(now - Date.parse(n.startedAt))],
          ['Version', n.version],
          ['Native', n.listeners.native ?? 'not listening'],
          ['STOMP', n.listeners.stomp ?? 'not listening'],
        ]} />
      </div>
      <div class="card">
        <h2>Master lock</h2>
        <${Facts} items=${[
          ['Lock holder', html`<strong id="lock-holder">${c.master ?? 'none'}</strong>`],
          ['Epoch', String(c.epoch)],
          ['Locker', locker.kind ?? '—'],
          ['Held for', current && current.node === c.master ? duration(now - Date.parse(current.at)) : '—'],
          ...(locker.lease
            ? [
                [
                  'Lease',
                  html`<span id="lease-age">renewed ${duration(Math.max(0, now - Date.parse(locker.lease.renewedAt)))} ago by ${locker.lease.holder ?? '—'}</span>, ${
                    Date.parse(locker.lease.expiresAt) > now
                      ? `runs out in ${duration(Date.parse(locker.lease.expiresAt) - now)}`
                      : `ran out ${duration(now - Date.parse(locker.lease.expiresAt))} ago`
                  } (lease ${duration(locker.lease.durationMs)})`,
                ],
              ]
            : []),
          ...(locker.directory ? [['Lock directory', locker.directory]] : []),
          ...(locker.holder
            ? [
                [
                  'Lock file',
                  `${locker.holder.name} on ${locker.holder.host} (pid ${locker.holder.pid}) since ${time(locker.holder.acquiredAt)}`,
                ],
              ]
            : []),
        ]} />
      </div>
    </div>
    <h2>Nodes</h2>
    <${Table}
      id="nodes"
      rows=${c.nodes}
      rowKey=${(x) => x.name}
      columns=${[
        {
          key: 'name',
          label: 'Node',
          render: (x) =>
            html`${x.name}${x.name === n.name ? html` <span class="muted">(this node)</span>` : null}`,
        },
        { key: 'role', label: 'Role', render: (x) => html`<${RoleBadge} role=${x.role} />` },
        {
          key: 'holder',
          label: 'Holds lock',
          value: (x) => (x.name === c.master ? 1 : 0),
          render: (x) => (x.name === c.master ? 'yes' : ''),
        },
        {
          key: 'lastSeen',
          label: 'Last seen',
          value: (x) => (x.lastSeen ? Date.parse(x.lastSeen) : null),
          render: (x) => (x.lastSeen ? `${duration(now - Date.parse(x.lastSeen))} ago` : '—'),
        },
        { key: 'startedAt', label: 'Announced since', render: (x) => time(x.startedAt) },
        { key: 'adminUrl', label: 'Console', render: (x) => nodeLink(x) },
      ]}
    />
    <h2>Takeover timeline</h2>
    <${Timeline} takeovers=${c.takeovers} now=${now} />
    ${
      live.observed.length > 0
        ? html`<h3>Seen by this console</h3>
          <ul class="observed">
            ${live.observed.map((o) => html`<li>${time(o.at)}: master ${o.from} → ${o.to}, no master seen for ${duration(o.gapMs)}</li>`)}
          </ul>`
        : null
    }
    <h2>Messages in the cluster</h2>
    <${Chart}
      t=${live.totals.t}
      series=${[
        { label: 'depth', values: live.totals.depth, color: '#2563eb' },
        { label: 'enqueued/s', values: live.totals.enqRate, color: '#16a34a' },
        { label: 'dequeued/s', values: live.totals.deqRate, color: '#ea580c' },
      ]}
    />
  </section>`;
}

function nodeLink(x) {
  const href = x.adminUrl ? safeHref(`${x.adminUrl}/`) : null;
  return href ? html`<a href=${href}>${x.adminUrl}</a>` : '—';
}

/** Newest first; each master's tenure is until the next takeover (or now), drawn to scale. */
function Timeline({ takeovers, now }) {
  if (takeovers.length === 0) return html`<p class="muted">No takeover recorded.</p>`;
  const rows = takeovers.map((t, i) => {
    const start = Date.parse(t.at);
    const end = i === 0 ? now : Date.parse(takeovers[i - 1].at);
    return { ...t, start, end, held: end - start, current: i === 0 };
  });
  const first = rows[rows.length - 1].start;
  const span = Math.max(1, now - first);
  return html`<ol class="timeline" id="takeover-timeline">
    ${rows.map(
      (r) => html`<li class=${r.current ? 'current' : ''} data-epoch=${r.epoch}>
        <div class="when">${time(r.at)}</div>
        <div class="what"><strong>${r.node}</strong> became master at epoch ${r.epoch}
          <span class="muted"> — ${r.reason}</span></div>
        <div class="held">${r.current ? 'master for ' : 'held '}${duration(r.held)}</div>
        <div class="bar"><span style=${{ marginLeft: `${((r.start - first) / span) * 100}%`, width: `${Math.max(0.5, (r.held / span) * 100)}%` }}></span></div>
      </li>`,
    )}
  </ol>`;
}
