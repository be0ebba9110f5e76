// One destination: live counters and chart; for a queue, browse messages (headers, properties, a
// body preview) and, for the admin role on the serving master, send, purge, move, copy, retry.
import { useEffect, useState } from 'preact/hooks';
import { api, enc } from './api.js';
import { Chart } from './charts.js';
import { duration, num, rate, time } from './format.js';
import { html } from './html.js';
import { live } from './live.js';
import { Facts, Notice } from './ui.js';

const last = (arr) => (arr && arr.length > 0 ? arr[arr.length - 1] : null);

export function QueuePage({ s, name, now, canChange }) {
  const q = s.queues.find((x) => x.name === name);
  const h = live.queueHistory.get(name);
  const [messages, setMessages] = useState(null);
  const [result, setResult] = useState(null);
  const [version, setVersion] = useState(0);
  const refresh = () => setVersion((v) => v + 1);
  useEffect(() => {
    let gone = false;
    api('GET', `/api/queues/${enc(name)}/messages?limit=50&previewBytes=512`)
      .then((r) => !gone && setMessages({ list: r.messages, error: null }))
      .catch((e) => !gone && setMessages({ list: [], error: e.message }));
    return () => {
      gone = true;
    };
  }, [name, version]);
  // Browse again when the queue's depth changes (a send, a purge, a consumer).
  const depth = q?.depth;
  useEffect(() => refresh(), [depth]);
  const act = async (what, fn) => {
    try {
      const r = await fn();
      setResult({ kind: 'ok', text: `${what}: ${JSON.stringify(r)}` });
    } catch (e) {
      setResult({ kind: 'error', text: `${what} failed: ${e.message}` });
    }
    refresh();
  };
  const isDlq = /(^|\.)DLQ(\.|$)/.test(name) || (messages?.list ?? []).some((m) => m.originalDestination);
  return html`<section>
    <p class="crumbs"><a href="#/queues">Queues</a> ›</p>
    <h1 class="dest-name">${name}</h1>
    ${!q ? html`<${Notice} kind="warn">No queue of this name on this node (yet).</${Notice}>` : null}
    ${
      q
        ? html`<${Facts} items=${[
            ['Depth', html`<span id="queue-depth">${num(q.depth)}</span>`],
            ['Consumers', num(q.consumers)],
            ['In flight', num(q.inflight)],
            ['Enqueued', num(q.enqueued)],
            ['Dequeued', num(q.dequeued)],
            ['Expired', num(q.expired)],
            ['Dead-lettered', num(q.deadLettered)],
            ['In / out', `${rate(last(h?.enqRate))} / ${rate(last(h?.deqRate))}`],
            ['Oldest message', q.oldestMessageAt === null ? '—' : duration(now - q.oldestMessageAt)],
          ]} />`
        : null
    }
    ${h ? html`<${Chart} t=${h.t} series=${[{ label: 'depth', values: h.depth, color: '#2563eb' }, { label: 'in/s', values: h.enqRate, color: '#16a34a' }, { label: 'out/s', values: h.deqRate, color: '#ea580c' }]} />` : null}
    ${result ? html`<${Notice} kind=${result.kind}>${result.text}</${Notice}>` : null}
    ${
      canChange
        ? html`<div class="actions">
      <${SendForm} onSend=${(body) => act('Send', () => api('POST', `/api/queues/${enc(name)}/messages`, body))} />
      <${Purge} depth=${q?.depth ?? 0} onPurge=${() => act('Purge', () => api('DELETE', `/api/queues/${enc(name)}/messages`))} />
    </div>`
        : null
    }
    <h2>Messages <button class="small" onClick=${refresh}>Refresh</button></h2>
    ${messages?.error ? html`<${Notice} kind="error">${messages.error}</${Notice}>` : null}
    ${messages && messages.list.length === 0 && !messages.error ? html`<p class="muted">No pending messages.</p>` : null}
    <div id="messages">
      ${(messages?.list ?? []).map(
        (m) => html`<${MessageCard} key=${m.id} m=${m} canChange=${canChange} isDlq=${isDlq}
          onMove=${(to) => act('Move', () => api('POST', `/api/queues/${enc(name)}/messages/${m.id}/move`, { to }))}
          onCopy=${(to) => act('Copy', () => api('POST', `/api/queues/${enc(name)}/messages/${m.id}/copy`, { to }))}
          onRetry=${() => act('Retry', () => api('POST', `/api/queues/${enc(name)}/messages/${m.id}/retry`))} />`,
      )}
    </div>
  </section>`;
}

export function TopicPage({ s, name, canChange }) {
  const t = s.topics.find((x) => x.name === name);
  const h = live.topicHistory.get(name);
  const subs = s.subscriptions.filter((d) => d.topic === name);
  const [result, setResult] = useState(null);
  const send = async (body) => {
    try {
      const r = await api('POST', `/api/topics/${enc(name)}/messages`, body);
      setResult({ kind: 'ok', text: `Published ${r.messageId}` });
    } catch (e) {
      setResult({ kind: 'error', text: `Publish failed: ${e.message}` });
    }
  };
  return html`<section>
    <p class="crumbs"><a href="#/topics">Topics</a> ›</p>
    <h1 class="dest-name">${name}</h1>
    ${!t ? html`<${Notice} kind="warn">No topic of this name on this node (yet).</${Notice}>` : null}
    ${t ? html`<${Facts} items=${[['Published', num(t.enqueued)], ['Subscribers', num(t.subscribers)], ['Durable subscriptions', num(t.durableSubscriptions)], ['In', rate(last(h?.enqRate))]]} />` : null}
    ${h ? html`<${Chart} t=${h.t} series=${[{ label: 'published/s', values: h.enqRate, color: '#16a34a' }]} />` : null}
    ${result ? html`<${Notice} kind=${result.kind}>${result.text}</${Notice}>` : null}
    ${canChange ? html`<div class="actions"><${SendForm} onSend=${send} label="Publish" /></div>` : null}
    <h2>Durable subscriptions</h2>
    ${
      subs.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<table><thead><tr><th>Client id</th><th>Name</th><th>Active</th><th class="num">Pending</th><th class="num">In flight</th></tr></thead>
      <tbody>${subs.map((d) => html`<tr key=${`${d.clientId}:${d.name}`}><td>${d.clientId}</td><td>${d.name}</td><td>${d.active === null ? '—' : d.active ? 'yes' : 'no'}</td><td class="num">${num(d.pending)}</td><td class="num">${num(d.inflight)}</td></tr>`)}</tbody></table>`
    }
  </section>`;
}

function SendForm({ onSend, label = 'Send' }) {
  const [body, setBody] = useState('');
  const [props, setProps] = useState('');
  const [persistent, setPersistent] = useState(true);
  const [error, setError] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    let properties;
    if (props.trim()) {
      try {
        properties = JSON.parse(props);
      } catch {
        setError('Properties must be a JSON object, e.g. {"region": "eu"}');
        return;
      }
    }
    setError(null);
    onSend({ body, persistent, ...(properties ? { properties } : {}) });
    setBody('');
  };
  return html`<form class="send" onSubmit=${submit} aria-label="Send a test message">
    <h3>${label} a test message</h3>
    <textarea name="body" placeholder="Message body" value=${body} onInput=${(e) => setBody(e.currentTarget.value)}></textarea>
    <input name="properties" placeholder='Properties (JSON), e.g. {"n": 1}' value=${props} onInput=${(e) => setProps(e.currentTarget.value)} />
    <label><input type="checkbox" checked=${persistent} onChange=${(e) => setPersistent(e.currentTarget.checked)} /> persistent</label>
    ${error ? html`<span class="error">${error}</span>` : null}
    <button type="submit">${label}</button>
  </form>`;
}

function Purge({ depth, onPurge }) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return html`<div class="purge"><button class="danger" onClick=${() => setAsking(true)}>Purge…</button></div>`;
  return html`<div class="purge">
    <span>Remove all ${num(depth)} pending messages?</span>
    <button class="danger" onClick=${() => {
      setAsking(false);
      onPurge();
    }}>Purge now</button>
    <button onClick=${() => setAsking(false)}>Cancel</button>
  </div>`;
}

function MessageCard({ m, canChange, isDlq, onMove, onCopy, onRetry }) {
  const [to, setTo] = useState('');
  const headers = [
    ['Id', m.id],
    ['Time', time(m.timestamp)],
    ['Priority', String(m.priority)],
    ['Persistent', m.persistent ? 'yes' : 'no'],
    ['Deliveries', String(m.deliveryCount)],
    ['Expires', m.expiration ? time(m.expiration) : 'never'],
    ...['correlationId', 'replyTo', 'type', 'producerId', 'originalDestination', 'dlqReason']
      .filter((k) => m[k] !== undefined)
      .map((k) => [k, m[k]]),
  ];
  const props = Object.entries(m.properties ?? {});
  return html`<article class="message" data-id=${m.id}>
    <${Facts} items=${headers} />
    ${props.length > 0 ? html`<div class="props">${props.map(([k, v]) => html`<span class="prop"><b>${k}</b>=${JSON.stringify(v)}</span>`)}</div>` : null}
    <pre class="body">${m.bodyPreview}${m.bodyTruncated ? '…' : ''}</pre>
    <div class="muted small">${num(m.bodySize)} bytes, ${m.bodyEncoding}${m.bodyTruncated ? ', preview cut' : ''}</div>
    ${
      canChange
        ? html`<div class="msg-actions">
            <input placeholder="to queue" value=${to} onInput=${(e) => setTo(e.currentTarget.value)} aria-label="Target queue" />
            <button disabled=${!to} onClick=${() => onMove(to)}>Move</button>
            <button disabled=${!to} onClick=${() => onCopy(to)}>Copy</button>
            ${isDlq && m.originalDestination ? html`<button onClick=${onRetry}>Retry to ${m.originalDestination}</button>` : null}
          </div>`
        : null
    }
  </article>`;
}
