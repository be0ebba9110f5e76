#!/usr/bin/env python3
"""STOMP queue browsing with stomp.py (Debian's python3-stomp), ActiveMQ's `browser:true`.

Usage: stomp_browse.py HOST PORT QUEUE COUNT [ACK]

Sends COUNT persistent messages to /queue/QUEUE (priority 7 for every third one, 4 otherwise),
browses the queue with a SUBSCRIBE carrying `browser:true` (ack mode ACK, default auto; in client
modes it acknowledges every browsed message, which must consume nothing) until the end-of-browse
MESSAGE (header `browser` = `end`), sends one more message, then consumes the queue with an
ordinary subscription. Prints one JSON object:
  {"browsed": [bodies], "end": {headers of the end marker} | null, "browsed_redelivered": n,
   "after_end": n (MESSAGEs on the browse subscription after its end marker),
   "consumed": [bodies], "consumed_redelivered": n, "errors": [...]}
and exits 1 when something timed out (2 on bad usage).
"""

import json
import queue
import sys
import threading
import time
import uuid

import stomp

TIMEOUT_S = 15.0


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.by_sub = {}
        self.errors = []
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
        self.errors.append(frame.headers.get("message", frame.body))

    def wait_receipt(self, receipt_id):
        deadline = time.monotonic() + TIMEOUT_S
        with self._cond:
            while receipt_id not in self._receipts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no RECEIPT %s (errors: %s)" % (receipt_id, self.errors))
                self._cond.wait(left)

    def next_message(self, sub_id):
        try:
            return self.sub_queue(sub_id).get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise AssertionError("no MESSAGE on %s within %ss (errors: %s)" % (sub_id, TIMEOUT_S, self.errors))


def main():
    if len(sys.argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    host, port, name, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ack = sys.argv[5] if len(sys.argv) == 6 else "auto"
    dest = "/queue/" + name
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect(wait=True)
    n = [0]

    def rid():
        n[0] += 1
        return "r-%d-%s" % (n[0], uuid.uuid4().hex[:6])

    def send(body, priority):
        r = rid()
        conn.send(dest, body, headers={"persistent": "true", "priority": str(priority), "receipt": r})
        listener.wait_receipt(r)

    out = {"browsed": [], "end": None, "browsed_redelivered": 0, "after_end": 0, "consumed": [],
           "consumed_redelivered": 0, "errors": listener.errors}
    code = 0
    try:
        for i in range(count):
            send("m%d" % i, 7 if i % 3 == 0 else 4)
        r = rid()
        conn.subscribe(dest, "browse", ack=ack, headers={"browser": "true", "receipt": r})
        listener.wait_receipt(r)
        while True:
            f = listener.next_message("browse")
            if f.headers.get("browser") == "end":
                out["end"] = dict(f.headers)
                out["end"]["body_length"] = len(f.body or "")
                break
            out["browsed"].append(f.body)
            if f.headers.get("redelivered") == "true":
                out["browsed_redelivered"] += 1
            if ack != "auto":
                conn.ack(f.headers["ack"])
        send("after-end", 4)
        r = rid()
        conn.subscribe(dest, "consume", ack="client-individual", headers={"receipt": r})
        listener.wait_receipt(r)
        for _ in range(count + 1):
            f = listener.next_message("consume")
            out["consumed"].append(f.body)
            if f.headers.get("redelivered") == "true":
                out["consumed_redelivered"] += 1
            r = rid()
            conn.ack(f.headers["ack"], receipt=r)
            listener.wait_receipt(r)
        # Every MESSAGE before this RECEIPT has been read: the browse got nothing after its end.
        r = rid()
        conn.unsubscribe("browse", headers={"receipt": r})
        listener.wait_receipt(r)
        out["after_end"] = listener.sub_queue("browse").qsize()
    except AssertionError as e:
        out["errors"] = listener.errors + [str(e)]
        code = 1
    finally:
        try:
            conn.disconnect()
        except Exception:
            pass
    print(json.dumps(out))
    return code


if __name__ == "__main__":
    sys.exit(main())
