// The node's live state as the stream tells it, and a short history per destination for
// sparklines, rates and charts.

export const HISTORY_POINTS = 120;

export const live = {
  snapshot: null,
  /** name -> { t: [], depth: [], enqRate: [], deqRate: [], last: {t, enq, deq} } */
  queueHistory: new Map(),
  topicHistory: new Map(),
  /** Cluster-wide totals over time, for the cluster page's chart. */
  totals: { t: [], depth: [], enqRate: [], deqRate: [] },
  /** Master changes this console saw itself: { from, to, at, gapMs }. */
  observed: [],
  lastServingAt: null,
  lastMaster: null,
  version: 0,
};

const listeners = new Set();

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  live.version++;
  for (const fn of listeners) fn(live.version);
}

function push(arr, v) {
  arr.push(v);
  if (arr.length > HISTORY_POINTS) arr.shift();
}

function rate(prev, now, dtSec) {
  if (prev == null || now == null || dtSec <= 0) return null;
  return Math.max(0, (now - prev) / dtSec);
}

function sample(history, item, t, depthOf) {
  let h = history.get(item.name);
  if (!h) {
    h = { t: [], depth: [], enqRate: [], deqRate: [], last: null };
    history.set(item.name, h);
  }
  const dt = h.last ? (t - h.last.t) / 1000 : 0;
  const enqRate = h.last ? rate(h.last.enq, item.enqueued, dt) : null;
  const deqRate = h.last ? rate(h.last.deq, item.dequeued ?? null, dt) : null;
  push(h.t, t / 1000);
  push(h.depth, depthOf(item));
  push(h.enqRate, enqRate);
  push(h.deqRate, deqRate);
  h.last = { t, enq: item.enqueued, deq: item.dequeued ?? null };
  return h;
}

function record(s) {
  const t = s.at;
  let depth = 0;
  let enq = 0;
  let deq = 0;
  for (const q of s.queues) {
    const h = sample(live.queueHistory, q, t, (x) => x.depth);
    depth += q.depth;
    enq += h.enqRate[h.enqRate.length - 1] ?? 0;
    deq += h.deqRate[h.deqRate.length - 1] ?? 0;
  }
  for (const x of s.topics) sample(live.topicHistory, x, t, (y) => y.enqueued ?? 0);
  push(live.totals.t, t / 1000);
  push(live.totals.depth, depth);
  push(live.totals.enqRate, enq);
  push(live.totals.deqRate, deq);
  // Forget destinations that are gone.
  if (live.queueHistory.size > s.queues.length) {
    const names = new Set(s.queues.map((q) => q.name));
    for (const k of live.queueHistory.keys()) if (!names.has(k)) live.queueHistory.delete(k);
  }
  // A change of master seen live: the gap is from the last tick that showed a serving master.
  const master = s.cluster.master;
  if (live.lastMaster && master && master !== live.lastMaster) {
    live.observed.unshift({ from: live.lastMaster, to: master, at: t, gapMs: t - (live.lastServingAt ?? t) });
  }
  if (master) {
    live.lastMaster = master;
    live.lastServingAt = t;
  }
}

function applyList(list, change) {
  const byName = new Map(list.map((x) => [x.name, x]));
  for (const name of change.remove) byName.delete(name);
  for (const item of change.upsert) byName.set(item.name, item);
  return [...byName.values()];
}

export function onStreamEvent(event, data) {
  if (event === 'snapshot') {
    live.snapshot = data;
  } else if (event === 'delta' && live.snapshot) {
    const s = { ...live.snapshot, ...data.set, at: data.at };
    for (const [key, change] of Object.entries(data.lists)) s[key] = applyList(s[key], change);
    live.snapshot = s;
  } else {
    return;
  }
  record(live.snapshot);
  notify();
}

/** Let views re-render (a clock tick, a status change). */
export function touch() {
  notify();
}
