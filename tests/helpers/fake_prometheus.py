#!/usr/bin/python3
"""A scripted stand-in for Prometheus's HTTP API, for the provider's unit
specs (tests/lua/prometheus_spec.lua): it answers what the spec told it to,
in order, and records every request. Python 3 standard library only;
listens on 127.0.0.1 only.

    fake_prometheus.py --port 0     prints "listening on 127.0.0.1:PORT" (flushed)

Control (JSON bodies):
    POST /_fake/script     {"path": "/api/v1/query", "responses": [R, ...]}
                           queues answers for a path; each is taken once, the
                           last one stays. R = {"status": 200, "headers": {...},
                           "json": {...} | "body": "raw text", "delay": seconds}
    GET  /_fake/requests   every request so far: [{"method", "path", "headers"
                           (lower-case names), "form" (the decoded form or
                           query string), "t" (monotonic seconds)}]
    POST /_fake/reset      forgets scripts and requests

Anything not scripted: /-/ready answers 200, the rest 404 with Prometheus's
error shape. SIGTERM/SIGINT stop it.
"""
import argparse
import json
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
scripts = {}
requests = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if not any(k.lower() == "content-type" for k in (headers or {})):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/_fake/script":
            doc = json.loads(raw)
            with lock:
                scripts[doc["path"]] = list(doc["responses"])
            return self.send(200, "{}")
        if url.path == "/_fake/requests":
            with lock:
                return self.send(200, json.dumps(requests))
        if url.path == "/_fake/reset":
            with lock:
                scripts.clear()
                requests.clear()
            return self.send(200, "{}")
        text = raw.decode("utf-8", "replace") if raw else url.query
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
        with lock:
            requests.append({"method": self.command, "path": url.path, "form": form, "t": time.monotonic(),
                             "headers": {k.lower(): v for k, v in self.headers.items()}})
            queue = scripts.get(url.path)
            r = None
            if queue:
                r = queue[0] if len(queue) == 1 else queue.pop(0)
        if r is None:
            if url.path == "/-/ready":
                return self.send(200, "Prometheus Server is Ready.\n", {"Content-Type": "text/plain"})
            return self.send(404, json.dumps({"status": "error", "errorType": "not_found",
                                              "error": "no script for " + url.path}))
        if r.get("delay"):
            time.sleep(r["delay"])
        body = r["body"] if "body" in r else json.dumps(r.get("json", {}))
        self.send(r.get("status", 200), body, r.get("headers"))

    do_GET = handle_any
    do_POST = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
