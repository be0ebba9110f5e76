#!/usr/bin/env python3
"""STOMP interoperability check with stomp.py (Debian's python3-stomp), a client no one here wrote.

Usage: stomp_interop.py HOST PORT

Runs queue send/receive, topic fan-out, a durable subscription, client-individual ack with NACK,
transactions and receipts against a STOMP 1.2 server with ActiveMQ's conventions. Prints one JSON
object {"ok": bool, "stomp": version, "results": {name: "ok" | error}} and exits 1 if any check
failed (2 on bad usage).
"""

import json
import queue
import sys
import threading
import time
import uuid

import stomp

TIMEOUT_S = 5.0


class Collector(stomp.ConnectionListener):
    """Collects MESSAGE, RECEIPT and ERROR frames of one connection."""

    def __init__(self):
        self.messages = queue.Queue()
        self.errors = []
        self._receipts = set()
        self._cond = threading.Condition()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        with self._cond:
            self._receipts.add(frame.headers.get("receipt-id"))
            self._cond.notify_all()

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", frame.body))

    def wait_receipt(self, receipt_id):
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while receipt_id not in self._receipts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no RECEIPT %s (errors: %s)" % (receipt_id, self.errors))
                self._cond.wait(left)

    def next_message(self):
        try:
            return self.messages.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError("no MESSAGE within %ss (errors: %s)" % (TIMEOUT_S, self.errors))


class Client:
    def __init__(self, host, port, **connect_headers):
        self.conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
        self.listener = Collector()
        self.conn.set_listener("collector", self.listener)
        self.conn.connect(wait=True, headers=connect_headers)
        self._n = 0

    def receipt_id(self):
        self._n += 1
        return "r-%d-%s" % (self._n, uuid.uuid4().hex[:6])

    def send(self, destination, body, **headers):
        rid = self.receipt_id()
        self.conn.send(destination, body, headers=dict(headers, receipt=rid))
        self.listener.wait_receipt(rid)

    def subscribe(self, destination, sub_id, ack="auto", **headers):
        rid = self.receipt_id()
        self.conn.subscribe(destination, sub_id, ack=ack, headers=dict(headers, receipt=rid))
        self.listener.wait_receipt(rid)

    def close(self):
        if self.conn.is_connected():
            rid = self.receipt_id()
            self.conn.disconnect(receipt=rid)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def check_queue(host, port, run):
    dest = "/queue/py.%s.q" % run
    producer = Client(host, port)
    consumer = Client(host, port)
    try:
        for i in range(3):
            producer.send(dest, "q%d" % i, **{"x-py": "v%d" % i, "persistent": "true"})
        consumer.subscribe(dest, "s1")
        got = [consumer.listener.next_message() for _ in range(3)]
        expect([m.body for m in got] == ["q0", "q1", "q2"], "bodies %r" % [m.body for m in got])
        expect(got[0].headers.get("x-py") == "v0", "user header %r" % got[0].headers)
        expect(got[0].headers.get("destination") == dest, "destination %r" % got[0].headers.get("destination"))
        expect(got[0].headers.get("persistent") == "true", "persistent %r" % got[0].headers)
    finally:
        producer.close()
        consumer.close()


def check_topic(host, port, run):
    dest = "/topic/py.%s.t" % run
    a, b, producer = Client(host, port), Client(host, port), Client(host, port)
    try:
        a.subscribe(dest, "ta")
        b.subscribe(dest, "tb")
        producer.send(dest, "fan-out")
        for c in (a, b):
            m = c.listener.next_message()
            expect(m.body == "fan-out", "topic body %r" % m.body)
    finally:
        for c in (a, b, producer):
            c.close()


def check_durable(host, port, run):
    dest = "/topic/py.%s.d" % run
    client_id = "py-durable-%s" % run
    sub = Client(host, port, **{"client-id": client_id})
    sub.subscribe(dest, "d1", ack="client-individual", **{"activemq.subscriptionName": "py-sub"})
    sub.close()
    producer = Client(host, port)
    try:
        producer.send(dest, "away-1", persistent="true")
        producer.send(dest, "away-2", persistent="true")
    finally:
        producer.close()
    back = Client(host, port, **{"client-id": client_id})
    try:
        back.subscribe(dest, "d1", ack="client-individual", **{"activemq.subscriptionName": "py-sub"})
        got = [back.listener.next_message() for _ in range(2)]
        expect([m.body for m in got] == ["away-1", "away-2"], "durable bodies %r" % [m.body for m in got])
        for m in got:
            back.conn.ack(m.headers["ack"])
        rid = back.receipt_id()
        back.conn.unsubscribe("d1", headers={"activemq.subscriptionName": "py-sub", "receipt": rid})
        back.listener.wait_receipt(rid)
    finally:
        back.close()


def check_nack(host, port, run):
    dest = "/queue/py.%s.n" % run
    c = Client(host, port)
    try:
        c.send(dest, "retry-me", persistent="true")
        c.subscribe(dest, "n1", ack="client-individual")
        first = c.listener.next_message()
        expect(first.headers.get("redelivered") == "false", "first delivery %r" % first.headers)
        c.conn.nack(first.headers["ack"])
        again = c.listener.next_message()
        expect(again.body == "retry-me", "redelivered body %r" % again.body)
        expect(again.headers.get("redelivered") == "true", "redelivered header %r" % again.headers)
        expect(again.headers["message-id"] == first.headers["message-id"], "same message-id")
        rid = c.receipt_id()
        c.conn.ack(again.headers["ack"], receipt=rid)
        c.listener.wait_receipt(rid)
        # Nothing comes back after the ACK: a marker sent afterwards is the next message.
        c.send(dest, "marker")
        expect(c.listener.next_message().body == "marker", "acked message came back")
    finally:
        c.close()


def check_transaction(host, port, run):
    dest = "/queue/py.%s.tx" % run
    c = Client(host, port)
    try:
        tx = c.conn.begin()
        c.conn.send(dest, "aborted-1", transaction=tx)
        c.conn.send(dest, "aborted-2", transaction=tx)
        c.conn.abort(tx)
        tx2 = c.conn.begin()
        c.conn.send(dest, "committed", transaction=tx2)
        rid = c.receipt_id()
        c.conn.commit(tx2, headers={"receipt": rid})
        c.listener.wait_receipt(rid)
        c.send(dest, "marker")
        c.subscribe(dest, "x1")
        got = [c.listener.next_message().body for _ in range(2)]
        expect(got == ["committed", "marker"], "transaction bodies %r" % got)
    finally:
        c.close()


def check_receipt(host, port, run):
    c = Client(host, port)
    rid = c.receipt_id()
    c.conn.send("/queue/py.%s.r" % run, "x", headers={"receipt": rid})
    c.listener.wait_receipt(rid)
    drid = c.receipt_id()
    c.conn.disconnect(receipt=drid)
    c.listener.wait_receipt(drid)


CHECKS = [
    ("queue", check_queue),
    ("topic", check_topic),
    ("durable", check_durable),
    ("client_individual_nack", check_nack),
    ("transaction", check_transaction),
    ("receipt", check_receipt),
]


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: stomp_interop.py HOST PORT\n")
        return 2
    host, port = argv[1], int(argv[2])
    run = uuid.uuid4().hex[:8]
    results = {}
    for name, check in CHECKS:
        try:
            check(host, port, run)
            results[name] = "ok"
        except Exception as e:  # report every check, not just the first failure
            results[name] = "%s: %s" % (type(e).__name__, e)
    ok = all(v == "ok" for v in results.values())
    version = getattr(stomp, "__version__", None)
    print(json.dumps({"ok": ok, "stomp": ".".join(map(str, version)) if version else None, "results": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
