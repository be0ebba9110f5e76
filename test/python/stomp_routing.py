#!/usr/bin/env python3
"""Virtual topics, composite destinations and unique client ids with stomp.py (Debian's python3-stomp).

Usage: stomp_routing.py HOST PORT COUNT

1. virtual topic: subscribes to /queue/Consumer.A.VirtualTopic.Orders and .B. (so both queues
   exist), unsubscribes (the consumers stop), sends COUNT persistent messages to
   /topic/VirtualTopic.Orders (each with a receipt), then drains both queues.
2. composite: subscribes to /topic/compT, sends COUNT messages to /queue/compA,/queue/compB,/topic/compT,
   drains compA and compB.
3. forwardTo: subscribes to /topic/orders.events, sends COUNT to /queue/orders (a composite queue
   the broker is configured to forward to /queue/orders.audit and /topic/orders.events), drains
   orders.audit.
4. client id: a second connection with the first's client-id gets an ERROR.
Prints one JSON object {"vt_a": [...], "vt_b": [...], "comp_a": [...], "comp_b": [...],
"comp_t": [...], "fwd_audit": [...], "fwd_events": [...], "dup_error": {headers} | null, "errors": [...]}.
"""

import json
import queue
import sys
import threading
import time

import stomp

TIMEOUT_S = 15.0


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.by_sub = {}
        self.errors = []
        self.error_frames = []
        self._receipts = set()
        self._cond = threading.Condition()

    def sub_queue(self, sub_id):
        with self._cond:
            return self.by_sub.setdefault(sub_id, queue.Queue())

    def on_message(self, frame):
        self.sub_queue(frame.headers.get("subscription")).put(frame)

    def on_receipt(self, frame):
        with self._cond:
            self._receipts.add(frame.headers.get("receipt-id"))
            self._cond.notify_all()

    def on_error(self, frame):
        self.error_frames.append(dict(frame.headers))
        self.errors.append(frame.headers.get("message", frame.body))

    def wait_receipt(self, rid):
        with self._cond:
            ok = self._cond.wait_for(lambda: rid in self._receipts, TIMEOUT_S)
        if not ok:
            raise RuntimeError("no receipt " + rid)


def connect(host, port, client_id):
    c = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    col = Collector()
    c.set_listener("col", col)
    c.connect(wait=True, headers={"client-id": client_id})
    return c, col


def drain(conn, col, dest, sub_id, n):
    conn.subscribe(destination=dest, id=sub_id, ack="client-individual")
    q = col.sub_queue(sub_id)
    got = []
    deadline = time.time() + TIMEOUT_S
    while len(got) < n and time.time() < deadline:
        try:
            f = q.get(timeout=0.5)
        except queue.Empty:
            continue
        got.append(f.body)
        conn.ack(f.headers.get("ack", f.headers["message-id"]))
    return got


def subscribe_with_receipt(conn, col, dest, sub_id, ack="auto"):
    rid = "sub-" + sub_id
    conn.subscribe(destination=dest, id=sub_id, ack=ack, headers={"receipt": rid})
    col.wait_receipt(rid)


def send_all(conn, col, dest, prefix, n):
    for i in range(n):
        rid = "%s-%d" % (prefix, i)
        conn.send(destination=dest, body="%s-%d" % (prefix, i), headers={"persistent": "true", "receipt": rid})
        col.wait_receipt(rid)


def collect(col, sub_id, n):
    q = col.sub_queue(sub_id)
    got = []
    deadline = time.time() + TIMEOUT_S
    while len(got) < n and time.time() < deadline:
        try:
            got.append(q.get(timeout=0.5).body)
        except queue.Empty:
            continue
    return got


def main():
    if len(sys.argv) != 4:
        print("usage: stomp_routing.py HOST PORT COUNT", file=sys.stderr)
        sys.exit(2)
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = {}
    conn, col = connect(host, port, "routing-app")

    # 1. virtual topic: the consumer queues exist (a consumer created them), then the consumers stop.
    for name in ("A", "B"):
        subscribe_with_receipt(conn, col, "/queue/Consumer.%s.VirtualTopic.Orders" % name, "vt-" + name)
        conn.unsubscribe(id="vt-" + name)
    send_all(conn, col, "/topic/VirtualTopic.Orders", "vt", n)
    out["vt_a"] = drain(conn, col, "/queue/Consumer.A.VirtualTopic.Orders", "vt-a2", n)
    out["vt_b"] = drain(conn, col, "/queue/Consumer.B.VirtualTopic.Orders", "vt-b2", n)
    if col.errors:
        print(json.dumps({"partial": out, "errors": col.errors, "frames": col.error_frames}))
        sys.exit(1)

    # 2. composite SEND to two queues and a topic.
    subscribe_with_receipt(conn, col, "/topic/compT", "comp-t")
    send_all(conn, col, "/queue/compA,/queue/compB,/topic/compT", "comp", n)
    out["comp_t"] = collect(col, "comp-t", n)
    out["comp_a"] = drain(conn, col, "/queue/compA", "comp-a", n)
    out["comp_b"] = drain(conn, col, "/queue/compB", "comp-b", n)

    # 3. a configured composite queue (forwardTo).
    subscribe_with_receipt(conn, col, "/topic/orders.events", "fwd-events")
    send_all(conn, col, "/queue/orders", "fwd", n)
    out["fwd_events"] = collect(col, "fwd-events", n)
    out["fwd_audit"] = drain(conn, col, "/queue/orders.audit", "fwd-audit", n)

    # 4. the same client id again while the first connection lives.
    dup = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    dcol = Collector()
    dup.set_listener("col", dcol)
    try:
        dup.connect(wait=True, headers={"client-id": "routing-app"})
    except Exception:
        pass
    deadline = time.time() + TIMEOUT_S
    while not dcol.error_frames and time.time() < deadline:
        time.sleep(0.05)
    out["dup_error"] = dcol.error_frames[0] if dcol.error_frames else None
    try:
        dup.disconnect()
    except Exception:
        pass
    out["errors"] = col.errors
    conn.disconnect()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
