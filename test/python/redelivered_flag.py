#!/usr/bin/env python3
"""The STOMP `redelivered` header across a handover, seen by stomp.py (issue #17.5).

Usage:
  redelivered_flag.py send HOST PORT QUEUE N
      sends m0 .. m{N-1} persistent, a receipt every 50 frames and on the last; prints {"sent": N}
  redelivered_flag.py hold HOST PORT QUEUE PREFETCH ACKS
      subscribes with ack:client-individual and activemq.prefetchSize PREFETCH, receives PREFETCH
      messages, acknowledges the first ACKS (each with a receipt), receives the ACKS more that the
      freed credit brings, prints {"received": [...], "acked": [...], "redelivered": [...]} and keeps
      the connection (never acknowledging the rest) until its stdin closes
  redelivered_flag.py drain HOST PORT QUEUE COUNT
      receives and acknowledges until COUNT messages came (or none for 20 s); prints
      {"messages": [[body, redelivered], ...]}
"""

import json
import queue
import sys
import threading
import time

import stomp

TIMEOUT_S = 20.0


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = set()
        self.errors = []
        self.cond = threading.Condition()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", frame.body))

    def wait_receipt(self, rid):
        deadline = time.monotonic() + TIMEOUT_S
        with self.cond:
            while rid not in self.receipts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no RECEIPT %s (errors: %s)" % (rid, self.errors))
                self.cond.wait(left)

    def next_message(self):
        try:
            return self.messages.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError("no MESSAGE within %ss (errors: %s)" % (TIMEOUT_S, self.errors))


def connect(host, port):
    conn = stomp.Connection12([(host, int(port))], heartbeats=(0, 0), auto_content_length=True)
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    return conn, listener


def redelivered(frame):
    return frame.headers.get("redelivered") == "true"


def send(host, port, dest, n):
    conn, listener = connect(host, port)
    for i in range(n):
        headers = {"persistent": "true"}
        if i % 50 == 49 or i == n - 1:
            headers["receipt"] = "s-%d" % i
        conn.send(dest, "m%d" % i, headers=headers)
        if "receipt" in headers:
            listener.wait_receipt(headers["receipt"])
    conn.disconnect()
    print(json.dumps({"sent": n}), flush=True)


def subscribe(conn, listener, dest, prefetch):
    conn.subscribe(dest, "s1", ack="client-individual",
                   headers={"activemq.prefetchSize": str(prefetch), "receipt": "sub"})
    listener.wait_receipt("sub")


def hold(host, port, dest, prefetch, acks):
    conn, listener = connect(host, port)
    subscribe(conn, listener, dest, prefetch)
    got = [listener.next_message() for _ in range(prefetch)]
    acked = got[:acks]
    for i, m in enumerate(acked):
        conn.ack(m.headers["ack"], receipt="a-%d" % i)
        listener.wait_receipt("a-%d" % i)
    got += [listener.next_message() for _ in range(acks)]
    print(json.dumps({
        "received": [m.body for m in got],
        "acked": [m.body for m in acked],
        "redelivered": [m.body for m in got if redelivered(m)],
    }), flush=True)
    sys.stdin.read()  # hold the unacknowledged ones until the test is done with this consumer


def drain(host, port, dest, count):
    conn, listener = connect(host, port)
    subscribe(conn, listener, dest, 100)
    out = []
    while len(out) < count:
        try:
            m = listener.messages.get(timeout=TIMEOUT_S)
        except queue.Empty:
            break
        out.append([m.body, redelivered(m)])
        conn.ack(m.headers["ack"])
    rid = "end"
    conn.disconnect(receipt=rid)
    print(json.dumps({"messages": out, "errors": listener.errors}), flush=True)


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, port, dest = argv[1], argv[2], argv[3], "/queue/" + argv[4]
    if mode == "send":
        send(host, port, dest, int(argv[5]))
    elif mode == "hold":
        hold(host, port, dest, int(argv[5]), int(argv[6]))
    elif mode == "drain":
        drain(host, port, dest, int(argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
