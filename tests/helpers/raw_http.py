#!/usr/bin/python3
"""An HTTP/1.x server that answers with exact bytes, for the probe's parser
specs (tests/lua/probe_spec.lua). Python 3 standard library only; listens on
127.0.0.1 only.

    raw_http.py --port 0      prints "listening on 127.0.0.1:PORT" (flushed)

Every path is /MODE/KEY; KEY is the version the JSON body (and the
X-Version header) names, and the key its connections are counted under.
A connection is counted under the key of its first request.

    /json/K              200, Content-Length, keep-alive
    /chunked/K           200, chunked in 3-byte chunks, a chunk extension and
                         a trailer, keep-alive
    /chunked-lf/K        the same with bare LF line ends
    /http10/K            HTTP/1.0, no length: the body ends at the close
    /http10-keepalive/K  HTTP/1.0, Connection: keep-alive, Content-Length
    /until-close/K       HTTP/1.1, Connection: close, no length
    /big/K               200, Content-Length 2 MiB (over the probe's 1 MiB cap)
    /big-chunked/K       the same, chunked
    /interim/K           100 Continue and 103 Early Hints, then 200
    /excess/K            200, then bytes that are not part of it
    /one-shot/K          200 (keep-alive is not refused), then the server
                         closes the connection: every reuse finds it closed
    /then-die/K          the first request of K answered as /one-shot; every
                         later connection for K is closed at once, unanswered
    /partial/K           Content-Length 100, 10 bytes, close
    /reset/K             Content-Length 100, 10 bytes, then a TCP reset
    /garbage/K           a status line that is not HTTP
    /fold/K              an obs-folded header line
    /hang/K              no answer: the request is counted, then the server
                         waits for the client to close
    /stats/K             {"connections": N, "requests": N} for K (itself
                         not counted)

HEAD gets the head of the same response without its body. SIGTERM/SIGINT
stop it.
"""
import argparse
import json
import signal
import socket
import socketserver
import struct
import sys
import threading

lock = threading.Lock()
connections = {}
requests = {}
answered_once = set()


def count(table, key):
    with lock:
        table[key] = table.get(key, 0) + 1


def body_for(key):
    return json.dumps({"version": key}).encode()


def head(status, headers, version="HTTP/1.1", eol=b"\r\n"):
    lines = [("%s %s" % (version, status)).encode()]
    for name, value in headers:
        lines.append(("%s: %s" % (name, value)).encode())
    return eol.join(lines) + eol + eol


def chunked(data, size, eol=b"\r\n", ext=True):
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        line = b"%x" % len(piece)
        if ext and i == 0:
            line += b";ext=1"
        out += line + eol + piece + eol
    return out + b"0" + eol + b"X-Trailer: yes" + eol + eol


class Handler(socketserver.BaseRequestHandler):
    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            try:
                data = self.request.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        line = raw.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3:
            return None
        return parts[0], parts[1]

    def handle(self):
        self.buf = b""
        first = True
        while True:
            req = self.read_request()
            if req is None:
                return
            method, path = req
            segs = path.split("?", 1)[0].strip("/").split("/")
            mode, key = (segs + [""])[:2]
            if mode == "stats":
                with lock:
                    b = json.dumps({"connections": connections.get(key, 0),
                                    "requests": requests.get(key, 0)}).encode()
                self.send(method, head("200 OK", [("Content-Type", "application/json"),
                                                  ("Content-Length", len(b))]), b)
                continue
            if first:
                count(connections, key)
                first = False
            count(requests, key)
            if not self.answer(method, mode, key):
                return

    def send(self, method, h, body=b""):
        self.request.sendall(h if method == "HEAD" else h + body)

    def answer(self, method, mode, key):
        """Writes the response; False closes the connection."""
        b = body_for(key)
        js = [("Content-Type", "application/json"), ("X-Version", key)]
        if mode == "json":
            self.send(method, head("200 OK", js + [("Content-Length", len(b))]), b)
            return True
        if mode == "chunked":
            self.send(method, head("200 OK", js + [("Transfer-Encoding", "chunked")]), chunked(b, 3))
            return True
        if mode == "chunked-lf":
            self.send(method, head("200 OK", js + [("Transfer-Encoding", "chunked")], eol=b"\n"),
                      chunked(b, 3, eol=b"\n"))
            return True
        if mode == "http10":
            self.send(method, head("200 OK", js, version="HTTP/1.0"), b)
            return False
        if mode == "http10-keepalive":
            self.send(method, head("200 OK", js + [("Connection", "keep-alive"),
                                                   ("Content-Length", len(b))], version="HTTP/1.0"), b)
            return True
        if mode == "until-close":
            self.send(method, head("200 OK", js + [("Connection", "close")]), b)
            return False
        if mode in ("big", "big-chunked"):
            pad = 2 * 1024 * 1024 - len(b) - 12
            big = b[:-1] + b',"pad":"' + b"x" * pad + b'"}'
            if mode == "big":
                self.send(method, head("200 OK", js + [("Content-Length", len(big))]), big)
            else:
                self.send(method, head("200 OK", js + [("Transfer-Encoding", "chunked")]),
                          chunked(big, 65536, ext=False))
            return True
        if mode == "interim":
            self.request.sendall(head("100 Continue", []) +
                                 head("103 Early Hints", [("Link", "</style.css>; rel=preload")]))
            self.send(method, head("200 OK", js + [("Content-Length", len(b))]), b)
            return True
        if mode == "excess":
            self.send(method, head("200 OK", js + [("Content-Length", len(b))]), b + b"HTTP/1.1 200 OK\r\n")
            return True
        if mode == "one-shot":
            self.send(method, head("200 OK", js + [("Content-Length", len(b))]), b)
            return False
        if mode == "then-die":
            with lock:
                fresh = key not in answered_once
                answered_once.add(key)
            if fresh:
                self.send(method, head("200 OK", js + [("Content-Length", len(b))]), b)
            return False
        if mode in ("partial", "reset"):
            self.request.sendall(head("200 OK", js + [("Content-Length", 100)]) + b[:10])
            if mode == "reset":
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "hang":
            try:
                while self.request.recv(65536):
                    pass
            except OSError:
                pass
            return False
        if mode == "garbage":
            self.request.sendall(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
            return True
        if mode == "fold":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nX-Version: " + key.encode() +
                                 b"\r\n continued\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
            return True
        self.send(method, head("404 Not Found", [("Content-Length", 0)]))
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()
    srv.server_close()


if __name__ == "__main__":
    sys.exit(main())
