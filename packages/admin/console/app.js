// The Keel web console: one page app over the admin API and its live stream (issue #24).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, basicHeader, readStream, setAuthorization } from './api.js';
import { safeHref } from './format.js';
import { html } from './html.js';
import { live, onStreamEvent, subscribe } from './live.js';
import { ClusterPage } from './page-cluster.js';
import { QueuePage, TopicPage } from './page-destination.js';
import { QueuesPage, TopicsPage } from './page-destinations.js';
import { BridgesPage, ConnectionsPage, StorePage } from './page-other.js';
import { Notice, RoleBadge } from './ui.js';

const NAV = [
  ['cluster', 'Cluster'],
  ['queues', 'Queues'],
  ['topics', 'Topics'],
  ['connections', 'Connections'],
  ['bridges', 'Bridges'],
  ['store', 'Store'],
];

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const page = parts[0] || 'cluster';
  const name = parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : null;
  return { page, name };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = () => setRoute(parseRoute());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** Re-render on every stream event and once a second (ages and durations move on). */
function useLive() {
  const [, setV] = useState(0);
  const [now, setNow] = useState(Date.now());
  useEffect(() => subscribe((v) => setV(v)), []);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

function Login({ session, onSession }) {
  const [open, setOpen] = useState(false);
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  if (session?.user) {
    return html`<div class="who">
      <span id="signed-in">${session.user}</span> <span class="badge">${session.role}</span>
      <button class="small" onClick=${() => {
        setAuthorization(null);
        onSession();
      }}>Sign out</button>
    </div>`;
  }
  if (!open)
    return html`<div class="who"><button class="small" id="sign-in" onClick=${() => setOpen(true)}>Sign in</button></div>`;
  const submit = async (e) => {
    e.preventDefault();
    const auth = basicHeader(user, password);
    try {
      await api('GET', '/api/console/session', undefined, auth);
      setAuthorization(auth);
      setError(null);
      setOpen(false);
      setPassword('');
      onSession();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : err.message);
    }
  };
  return html`<form class="who login" onSubmit=${submit}>
    <input name="user" autocomplete="username" placeholder="user" value=${user} onInput=${(e) => setUser(e.currentTarget.value)} />
    <input name="password" type="password" autocomplete="current-password" placeholder="password" value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} />
    <button type="submit">Sign in</button>
    ${error ? html`<span class="error">${error}</span>` : null}
  </form>`;
}

/** A node that is not the serving master says so and links to the master's console. */
function RoleBanner({ s }) {
  const n = s.node;
  if (n.role === 'master' && !n.readOnly) return null;
  const master = s.cluster.nodes.find((x) => x.name === s.cluster.master);
  const href = master?.adminUrl ? safeHref(`${master.adminUrl}/`) : null;
  return html`<div class="banner" id="role-banner">
    This node, <strong>${n.name}</strong>, is the <strong>${n.role}</strong>: it serves no clients and its
    console is read-only.
    ${
      s.cluster.master
        ? html` The master is <strong>${s.cluster.master}</strong>${href ? html` — <a id="master-link" href=${href}>open the master’s console</a>` : null}.`
        : ' No master is known at the moment.'
    }
  </div>`;
}

function App() {
  const route = useRoute();
  const now = useLive();
  const [session, setSession] = useState(null);
  const [status, setStatus] = useState('connecting');
  const [authVersion, setAuthVersion] = useState(0);
  const reloadSession = () => setAuthVersion((v) => v + 1);

  useEffect(() => {
    api('GET', '/api/console/session')
      .then(setSession)
      .catch(() => {
        setAuthorization(null);
        setSession(null);
      });
  }, [authVersion]);

  useEffect(() => {
    const abort = new AbortController();
    readStream(abort.signal, onStreamEvent, setStatus);
    return () => abort.abort();
  }, [authVersion]);

  const s = live.snapshot;
  const canChange = session?.role === 'admin' && s && !s.node.readOnly;
  let page = null;
  if (!s) {
    page =
      status === 'unauthorized'
        ? html`<${Notice} kind="warn">This node needs credentials to read: sign in.</${Notice}>`
        : html`<p class="muted">Waiting for the node’s state…</p>`;
  } else {
    const props = { s, now, canChange, name: route.name };
    page =
      {
        cluster: () => html`<${ClusterPage} ...${props} />`,
        queues: () => html`<${QueuesPage} ...${props} />`,
        topics: () => html`<${TopicsPage} ...${props} />`,
        queue: () => html`<${QueuePage} key=${route.name} ...${props} />`,
        topic: () => html`<${TopicPage} key=${route.name} ...${props} />`,
        connections: () => html`<${ConnectionsPage} ...${props} />`,
        bridges: () => html`<${BridgesPage} ...${props} />`,
        store: () => html`<${StorePage} ...${props} />`,
      }[route.page]?.() ?? html`<${Notice} kind="warn">No such page.</${Notice}>`;
  }
  const current = route.page === 'queue' ? 'queues' : route.page === 'topic' ? 'topics' : route.page;
  return html`<div class="layout">
    <header>
      <a class="brand" href="#/cluster">Keel</a>
      ${s ? html`<span class="node">${s.node.name} <${RoleBadge} role=${s.node.role} /></span>` : null}
      <nav>${NAV.map(([k, label]) => html`<a href=${`#/${k}`} class=${k === current ? 'active' : ''}>${label}</a>`)}</nav>
      <span class=${`live ${status}`} title="live stream">${status === 'open' ? '● live' : `○ ${status}`}</span>
      <${Login} session=${session} onSession=${reloadSession} />
    </header>
    ${s ? html`<${RoleBanner} s=${s} />` : null}
    ${session && session.role === 'read-only' ? html`<div class="banner subtle">Signed in read-only: no changes from this console.</div>` : null}
    ${session && !session.adminConfigured ? html`<div class="banner subtle">No admin user is configured on this node, so nothing can be changed here.</div>` : null}
    <main>${page}</main>
  </div>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the boot message
render(html`<${App} />`, root);
