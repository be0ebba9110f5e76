#!/usr/bin/env python3
"""ActiveMQ message groups, exclusive consumers and consumer priority with stomp.py (Debian's
python3-stomp), on one STOMP connection per consumer.

Usage: stomp_dispatch_policies.py HOST PORT SCENARIO QUEUE

SCENARIO is one of:
  groups    consumers a and b (prefetch 10) acknowledge what they get; 3 groups x 50 messages
            (JMSXGroupID g1..g3, JMSXGroupSeq 1..50) are sent interleaved.
  handover  a alone gets g1 1..5 and acknowledges 1..2; b subscribes; a disconnects without
            acknowledging 3..5; g1 6..10 are sent.
  close     a gets g1 1, g1 -1 (closes g1) and g2 1, acknowledges them; b subscribes; g1 1 is sent
            again.
  exclusive a and b subscribe with activemq.exclusive:true; 20 messages; a acknowledges m1..m8 and
            disconnects; 10 more messages.
  option    a subscribes to /queue/QUEUE?consumer.exclusive=true (ActiveMQ destination option), b
            plainly; 5 messages.
  priority  low (activemq.priority:0, prefetch 100) and high (activemq.priority:127, prefetch 5);
            8 messages, none acknowledged.

Prints one JSON object: {"got": [[consumer, body, {headers}], ...] in arrival order, "errors": [...]}
and exits 1 when something timed out (2 on bad usage).
"""

import json
import sys
import threading
import time

import stomp

TIMEOUT_S = 20.0
HEADERS = ("JMSXGroupID", "JMSXGroupSeq", "JMSXGroupFirstForConsumer", "redelivered", "message-id")


class Receipts(stomp.ConnectionListener):
    """One STOMP connection that waits for its RECEIPTs and logs its ERRORs."""

    def __init__(self, name, host, port, log):
        self.name = name
        self.log = log
        self._receipts = set()
        self._cond = threading.Condition()
        self.conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
        self.conn.set_listener(name, self)
        self.conn.connect(wait=True)

    def on_receipt(self, frame):
        with self._cond:
            self._receipts.add(frame.headers.get("receipt-id"))
            self._cond.notify_all()

    def on_error(self, frame):
        self.log.errors.append("%s: %s" % (self.name, frame.headers.get("message", frame.body)))

    def wait_receipt(self, receipt_id):
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while receipt_id not in self._receipts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no RECEIPT %s (errors: %s)" % (receipt_id, self.log.errors))
                self._cond.wait(left)


class Consumer(Receipts):
    """One STOMP connection with one client-individual subscription."""

    def __init__(self, name, host, port, log, headers, auto_ack=True):
        super().__init__(name, host, port, log)
        self.auto_ack = auto_ack
        self.acks = {}
        self.gone = False
        sub = {"ack": "client-individual", "receipt": name + "-sub"}
        sub.update(headers)
        dest = sub.pop("destination")
        self.conn.subscribe(destination=dest, id=name, **sub)
        self.wait_receipt(name + "-sub")

    def on_message(self, frame):
        h = frame.headers
        body = frame.body if isinstance(frame.body, str) else frame.body.decode()
        self.log.add(self.name, body, {k: h[k] for k in HEADERS if k in h})
        self.acks[body] = h["ack"]
        if self.auto_ack:
            self.conn.ack(h["ack"])

    def ack(self, body):
        self.conn.ack(self.acks[body])

    def leave(self):
        """Gone without a word: the socket closes (its unacknowledged messages go back)."""
        self.gone = True
        self.conn.transport.disconnect_socket()


class Log:
    def __init__(self):
        self.got = []
        self.errors = []
        self._cond = threading.Condition()

    def add(self, consumer, body, headers):
        with self._cond:
            self.got.append([consumer, body, headers])
            self._cond.notify_all()

    def wait_for(self, n):
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while len(self.got) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d of %d messages (errors: %s)" % (len(self.got), n, self.errors))
                self._cond.wait(left)


class Producer(Receipts):
    def __init__(self, host, port, log, dest):
        super().__init__("producer", host, port, log)
        self.dest = dest
        self.n = 0

    def send(self, body, receipt=True, **headers):
        self.n += 1
        rid = "send-%d" % self.n
        hs = {"persistent": "true"}
        hs.update({k: str(v) for k, v in headers.items()})
        if receipt:
            hs["receipt"] = rid
        self.conn.send(destination=self.dest, body=body, headers=hs)
        if receipt:
            self.wait_receipt(rid)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, scenario, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dest = "/queue/" + name
    log = Log()
    ok = True
    consumers = []

    def consumer(cname, auto_ack=True, **headers):
        headers.setdefault("destination", dest)
        c = Consumer(cname, host, port, log, headers, auto_ack)
        consumers.append(c)
        return c

    try:
        p = Producer(host, port, log, dest)
        if scenario == "groups":
            consumer("a", **{"activemq.prefetchSize": "10"})
            consumer("b", **{"activemq.prefetchSize": "10"})
            for i in range(1, 51):
                for g in ("g1", "g2", "g3"):
                    p.send("%s:%d" % (g, i), JMSXGroupID=g, JMSXGroupSeq=i)
            log.wait_for(150)
        elif scenario == "handover":
            a = consumer("a", auto_ack=False)
            for i in range(1, 6):
                p.send("g1:%d" % i, JMSXGroupID="g1", JMSXGroupSeq=i)
            log.wait_for(5)
            a.ack("g1:1")
            a.ack("g1:2")
            consumer("b")
            a.leave()
            for i in range(6, 11):
                p.send("g1:%d" % i, JMSXGroupID="g1", JMSXGroupSeq=i)
            log.wait_for(13)
        elif scenario == "close":
            consumer("a")
            p.send("g1:1", JMSXGroupID="g1", JMSXGroupSeq=1)
            p.send("g1:end", JMSXGroupID="g1", JMSXGroupSeq=-1)
            p.send("g2:1", JMSXGroupID="g2", JMSXGroupSeq=1)
            log.wait_for(3)
            consumer("b")
            p.send("g1:again", JMSXGroupID="g1", JMSXGroupSeq=1)
            log.wait_for(4)
        elif scenario == "exclusive":
            a = consumer("a", auto_ack=False, **{"activemq.exclusive": "true"})
            consumer("b", **{"activemq.exclusive": "true"})
            for i in range(1, 21):
                p.send("m%d" % i)
            log.wait_for(20)
            for i in range(1, 9):
                a.ack("m%d" % i)
            a.leave()
            for i in range(21, 31):
                p.send("m%d" % i)
            log.wait_for(42)
        elif scenario == "option":
            consumer("a", destination=dest + "?consumer.exclusive=true")
            consumer("b")
            for i in range(1, 6):
                p.send("m%d" % i)
            log.wait_for(5)
        elif scenario == "priority":
            consumer("low", auto_ack=False, **{"activemq.priority": "0", "activemq.prefetchSize": "100"})
            consumer("high", auto_ack=False, **{"activemq.priority": "127", "activemq.prefetchSize": "5"})
            for i in range(1, 9):
                p.send("m%d" % i)
            log.wait_for(8)
        else:
            print(__doc__, file=sys.stderr)
            return 2
        # Anything more (a duplicate) would show up within this.
        time.sleep(0.3)
    except AssertionError as e:
        log.errors.append(str(e))
        ok = False
    for c in consumers:
        if c.gone:
            continue
        try:
            c.conn.disconnect()
        except Exception:
            pass
    print(json.dumps({"got": log.got, "errors": log.errors}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
