#!/usr/bin/env python3
"""STOMP authorization refusals with stomp.py (Debian's python3-stomp).

Usage: stomp_authorization.py HOST PORT STEPS_JSON

STEPS_JSON is a list of steps, each run on a connection of its own:
  {"user": U, "password": P, "action": "connect" | "send" | "subscribe" | "browse" | "durable",
   "destination": "/queue/x" | "/topic/y"}
Each step logs in (CONNECT login/passcode; a durable step also sends client-id), does its action
with a `receipt` header and waits for the RECEIPT or an ERROR frame. Prints one JSON list, one
result per step:
  {"ok": true} or {"ok": false, "code": ERROR's code header, "message": its message header,
                   "receipt_id": its receipt-id header or null, "connected": bool}
Exits 2 on bad usage.
"""

import json
import sys
import threading
import time
import uuid

import stomp

TIMEOUT_S = 15.0


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.cond = threading.Condition()
        self.receipts = set()
        self.error = None
        self.disconnected = False

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.error = frame.headers
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def wait(self, receipt_id):
        deadline = time.monotonic() + TIMEOUT_S
        with self.cond:
            while receipt_id not in self.receipts and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("neither RECEIPT %s nor ERROR" % receipt_id)
                self.cond.wait(left)


def run_step(host, port, step):
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
    listener = Listener()
    conn.set_listener("l", listener)
    headers = {}
    if step["action"] == "durable":
        headers["client-id"] = "py-durable-" + uuid.uuid4().hex[:8]
    connected = False
    try:
        conn.connect(step["user"], step["password"], wait=True, headers=headers)
        connected = True
    except Exception:
        pass
    if connected and step["action"] != "connect":
        r = "r-" + uuid.uuid4().hex[:8]
        dest = step["destination"]
        action = step["action"]
        if action == "send":
            conn.send(dest, "secret", headers={"persistent": "true", "receipt": r})
        elif action == "subscribe":
            conn.subscribe(dest, "s1", ack="client-individual", headers={"receipt": r})
        elif action == "browse":
            conn.subscribe(dest, "s1", ack="auto", headers={"browser": "true", "receipt": r})
        elif action == "durable":
            conn.subscribe(dest, "s1", ack="client-individual",
                           headers={"activemq.subscriptionName": "d1", "receipt": r})
        listener.wait(r)
    else:
        # A refused CONNECT: stomp.py may return before the ERROR frame arrives.
        deadline = time.monotonic() + TIMEOUT_S
        with listener.cond:
            while not connected and listener.error is None and time.monotonic() < deadline:
                listener.cond.wait(0.1)
    err = listener.error
    try:
        conn.disconnect()
    except Exception:
        pass
    if err is None:
        return {"ok": True, "connected": connected}
    return {"ok": False, "connected": connected, "code": err.get("code"), "message": err.get("message"),
            "receipt_id": err.get("receipt-id")}


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, steps = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    print(json.dumps([run_step(host, port, s) for s in steps]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
