#!/usr/bin/env python3
"""JMS message selectors over STOMP with stomp.py (Debian's python3-stomp): the `selector` SUBSCRIBE
header as ActiveMQ reads it.

Usage: stomp_selectors.py HOST PORT MODE NAME [COUNT]
  split    send COUNT persistent messages to /queue/NAME (property `n` = i, `colour` red for even i,
           blue for odd), then two consumers with complementary selectors drain it;
           prints {"red": [bodies], "blue": [bodies], "errors": [...]}
  drain    one consumer with selector `colour = 'red'` on /queue/NAME, receives COUNT messages;
           prints {"red": [bodies], "seconds": s, "errors": [...]}
  invalid  a SUBSCRIBE with a broken selector; prints {"error": {headers}, "errors": [...]}
  acked    ACK_MODE (client-individual or client) in NAME's place suffix: /queue/NAME gets a consumer
           with selector `colour = 'red'`, activemq.prefetchSize 5 and that ack mode, acking each
           message as it arrives; meanwhile another connection sends COUNT messages (red even i,
           blue odd); prints {"red": [bodies], "errors": [...]}
  durable  a durable subscriber (client-id NAME) with selector `colour = 'red'` subscribes, goes away,
           COUNT messages alternate red/blue on /topic/NAME, it comes back; prints {"red": [bodies]}
"""

import json
import queue
import sys
import threading
import time

import stomp

TIMEOUT_S = 30.0


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.by_sub = {}
        self.errors = []
        self.error_frames = queue.Queue()

    def q(self, sub):
        return self.by_sub.setdefault(sub, queue.Queue())

    def on_message(self, frame):
        self.q(frame.headers.get("subscription")).put(frame)

    def on_error(self, frame):
        self.errors.append(frame.headers.get("message", frame.body))
        self.error_frames.put(dict(frame.headers))


def connect(host, port, client_id=None):
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("c", listener)
    headers = {"client-id": client_id} if client_id else {}
    conn.connect(wait=True, headers=headers)
    return conn, listener


def send(conn, dest, count):
    for i in range(count):
        colour = "red" if i % 2 == 0 else "blue"
        headers = {"persistent": "true", "n": str(i), "colour": colour}
        conn.send(dest, "m%d" % i, headers=headers)


def take(listener, sub, count):
    out = []
    while len(out) < count:
        try:
            out.append(listener.q(sub).get(timeout=TIMEOUT_S))
        except queue.Empty:
            listener.errors.append("timed out on %s after %d of %d" % (sub, len(out), count))
            break
    return out


def main():
    host, port, mode, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    result = {}
    conn, listener = connect(host, port, client_id=name if mode == "durable" else None)
    if mode == "split":
        dest = "/queue/" + name
        send(conn, dest, count)
        conn.subscribe(dest, id="red", ack="client-individual", headers={"selector": "colour = 'red'"})
        conn.subscribe(dest, id="blue", ack="client-individual", headers={"selector": "NOT colour = 'red'"})
        for sub in ("red", "blue"):
            got = []
            for f in take(listener, sub, count // 2):
                got.append(f.body)
                conn.ack(f.headers.get("ack", f.headers["message-id"]))
            result[sub] = got
        time.sleep(0.3)
        result["extra"] = sum(listener.q(s).qsize() for s in ("red", "blue"))
    elif mode == "drain":
        dest = "/queue/" + name
        start = time.monotonic()
        conn.subscribe(dest, id="red", ack="auto", headers={"selector": "colour = 'red'", "activemq.prefetchSize": "1000"})
        result["red"] = [f.body for f in take(listener, "red", count)]
        result["seconds"] = time.monotonic() - start
    elif mode == "acked":
        # Usage: acked NAME COUNT ACK_MODE
        dest = "/queue/" + name
        ack_mode = sys.argv[6]
        got = []
        done = threading.Event()

        class Acker(stomp.ConnectionListener):
            def on_message(self, frame):
                got.append(frame.body)
                conn.ack(frame.headers["ack"])
                if len(got) == count // 2:
                    done.set()

        conn.set_listener("acker", Acker())
        headers = {"selector": "colour = 'red'", "activemq.prefetchSize": "5"}
        conn.subscribe(dest, id="red", ack=ack_mode, headers=headers)
        pconn, _ = connect(host, port)
        send(pconn, dest, count)
        if not done.wait(TIMEOUT_S):
            listener.errors.append("timed out after %d of %d" % (len(got), count // 2))
        time.sleep(0.3)
        pconn.disconnect()
        result["red"] = list(got)
    elif mode == "invalid":
        conn.subscribe("/queue/" + name, id="bad", ack="auto", headers={"selector": "colour = 'red' AND", "receipt": "r1"})
        result["error"] = listener.error_frames.get(timeout=TIMEOUT_S)
    elif mode == "durable":
        dest = "/topic/" + name
        sub_headers = {"selector": "colour = 'red'", "activemq.subscriptionName": "sel"}
        conn.subscribe(dest, id="d", ack="client-individual", headers=sub_headers)
        time.sleep(0.5)
        conn.disconnect()  # the durable subscription stays, inactive
        pconn, _ = connect(host, port)
        send(pconn, dest, count)
        pconn.disconnect()
        conn, listener = connect(host, port, client_id=name)
        conn.subscribe(dest, id="d", ack="client-individual", headers=sub_headers)
        got = []
        for f in take(listener, "d", count // 2):
            got.append(f.body)
            conn.ack(f.headers.get("ack", f.headers["message-id"]))
        time.sleep(0.3)
        result["red"] = got
        result["extra"] = listener.q("d").qsize()
    result["errors"] = listener.errors if mode != "invalid" else []
    print(json.dumps(result))
    try:
        conn.disconnect()
    except Exception:
        pass


if __name__ == "__main__":
    main()
