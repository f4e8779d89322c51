#!/usr/bin/env python3
"""A small Chrome DevTools Protocol client for the report's browser test.

Only the standard library: a WebSocket client (RFC 6455, client side:
masked frames, fragmentation, ping/pong, 64-bit lengths) and the few CDP
calls the test needs. The browser itself is started, and stopped by PID,
by the Lua test (tests/e2e/report_browser_spec.lua); this helper only talks
to it over 127.0.0.1.

  cdp.py inspect --port P --path /devtools/browser/ID --url file:///x.html
                 --query FILE.js --out DIR [--width 1000] [--timeout 30]
      Opens a new page, loads the URL, collects every console message,
      exception and log entry, evaluates the JavaScript in FILE.js (its
      value, returned by value, is the "dom" of the answer), then takes
      screenshots in light mode, with prefers-color-scheme: dark emulated,
      and with print media emulated (DIR/light.png, dark.png, print.png),
      reading a few computed colours in each (--no-shots: light mode only,
      no screenshot). Prints one JSON document.

  cdp.py pngstat FILE.png [--rows N]
      Width, height, mean luminance (0..1) and the number of distinct
      colours of a (small) PNG, or of its top N rows (8-bit RGB/RGBA, non-interlaced, as Chromium
      writes them), as JSON. The screenshots of `inspect` come with these
      statistics for a thumbnail of the page.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time
import zlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    def __init__(self, host, port, path, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("websocket: the connection closed during the handshake")
            data += chunk
        head, self.buf = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise RuntimeError("websocket: handshake refused: " + lines[0])
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        got = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-accept":
                got = value.strip()
        if got != want:
            raise RuntimeError("websocket: bad Sec-WebSocket-Accept")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise RuntimeError("websocket: the connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        parts = []
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise RuntimeError("websocket: closed by the browser")
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class CDP:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events = []

    def _pump(self, deadline):
        self.ws.sock.settimeout(max(0.05, deadline - time.monotonic()))
        msg = json.loads(self.ws.recv())
        if "method" in msg:
            self.events.append(msg)
        return msg

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._pump(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError(f"{method}: no answer within {timeout}s")

    def wait_event(self, name, session, timeout=30):
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == name and ev.get("sessionId") == session:
                    return ev
            seen = len(self.events)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no {name} within {timeout}s")
            try:
                self._pump(deadline)
            except socket.timeout:
                pass

    def settle(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._pump(deadline)
            except socket.timeout:
                break


COLOURS = """(() => {
  const bg = getComputedStyle(document.body).backgroundColor;
  const fg = getComputedStyle(document.body).color;
  const line = document.querySelector('.series-line, .series-area, .bar');
  const stroke = line ? getComputedStyle(line).stroke : null;
  const fill = line ? getComputedStyle(line).fill : null;
  return { background: bg, color: fg, series_stroke: stroke, series_fill: fill,
           dark: matchMedia('(prefers-color-scheme: dark)').matches, print: matchMedia('print').matches,
           height: document.documentElement.scrollHeight };
})()"""


def console_messages(events):
    out = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append({"source": "console", "level": p.get("type"), "text": text})
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("text", "") + " " + str(d.get("exception", {}).get("description", ""))
            out.append({"source": "exception", "level": "error", "text": text.strip()})
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            out.append({"source": "log:" + str(e.get("source")), "level": e.get("level"),
                        "text": e.get("text", "") + (" " + e["url"] if e.get("url") else "")})
    return out


def screenshot(cdp, session, path):
    """The whole page to `path`, and the statistics of a thumbnail of it
    (a tenth of the size: decoding a full page in Python would be slow)."""
    shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session, timeout=60)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    size = evaluate(cdp, session, "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    thumb = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1],
                                                         "scale": 0.1}}, session, timeout=60)
    stat = png_stats(base64.b64decode(thumb["data"]))
    stat["file"] = path
    return stat


def evaluate(cdp, session, expression):
    res = cdp.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    if "exceptionDetails" in res:
        raise RuntimeError("the query raised: " + json.dumps(res["exceptionDetails"])[:2000])
    return res.get("result", {}).get("value")


def inspect(args):
    with open(args.query, encoding="utf-8") as f:
        query = f.read()
    ws = WebSocket("127.0.0.1", args.port, args.path, args.timeout)
    cdp = CDP(ws)
    out = {}
    try:
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            cdp.call(domain, {}, session)
        cdp.call("Emulation.setDeviceMetricsOverride",
                 {"width": args.width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        cdp.call("Emulation.setEmulatedMedia", {"media": "screen",
                                                "features": [{"name": "prefers-color-scheme", "value": "light"}]},
                 session)
        nav = cdp.call("Page.navigate", {"url": args.url}, session)
        if nav.get("errorText"):
            raise RuntimeError("navigation failed: " + nav["errorText"])
        cdp.wait_event("Page.loadEventFired", session, args.timeout)
        cdp.settle(0.5)
        out["dom"] = evaluate(cdp, session, query)
        out["light"] = evaluate(cdp, session, COLOURS)
        if not args.shots:
            cdp.settle(0.3)
            out["console"] = console_messages(cdp.events)
            cdp.call("Target.closeTarget", {"targetId": target})
            return finish(out)
        out["screenshots"] = {"light": screenshot(cdp, session, os.path.join(args.out, "light.png"))}
        cdp.call("Emulation.setEmulatedMedia", {"media": "screen",
                                                "features": [{"name": "prefers-color-scheme", "value": "dark"}]},
                 session)
        cdp.settle(0.2)
        out["dark"] = evaluate(cdp, session, COLOURS)
        out["screenshots"]["dark"] = screenshot(cdp, session, os.path.join(args.out, "dark.png"))
        cdp.call("Emulation.setEmulatedMedia", {"media": "print",
                                                "features": [{"name": "prefers-color-scheme", "value": "dark"}]},
                 session)
        cdp.settle(0.2)
        out["print"] = evaluate(cdp, session, COLOURS)
        out["screenshots"]["print"] = screenshot(cdp, session, os.path.join(args.out, "print.png"))
        pdf = cdp.call("Page.printToPDF", {"printBackground": False}, session, timeout=60)
        with open(os.path.join(args.out, "report.pdf"), "wb") as f:
            f.write(base64.b64decode(pdf["data"]))
        out["pdf"] = os.path.join(args.out, "report.pdf")
        cdp.settle(0.3)
        out["console"] = console_messages(cdp.events)
        cdp.call("Target.closeTarget", {"targetId": target})
    finally:
        ws.close()
    finish(out)


def finish(out):
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def pngstat(path, rows):
    with open(path, "rb") as f:
        return png_stats(f.read(), rows)


def png_stats(data, max_rows=None):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError("not a PNG")
    pos, idat, width = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack("!I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack("!IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    if width is None or depth != 8 or ctype not in (2, 6) or interlace != 0:
        raise RuntimeError("not an 8-bit RGB(A) non-interlaced PNG")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    lum_sum, count, colours = 0.0, 0, set()
    pos = 0
    rows = height if max_rows is None else min(height, max_rows)
    for y in range(rows):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        if True:
            for x in range(0, width):
                r, g, b = line[x * bpp], line[x * bpp + 1], line[x * bpp + 2]
                lum_sum += (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
                count += 1
                colours.add((r, g, b))
    return {"width": width, "height": height, "rows": rows, "luminance": lum_sum / max(1, count),
            "colours": len(colours)}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inspect")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--path", required=True)
    i.add_argument("--url", required=True)
    i.add_argument("--query", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--width", type=int, default=1000)
    i.add_argument("--timeout", type=float, default=30)
    i.add_argument("--no-shots", dest="shots", action="store_false", help="no screenshots, no PDF")
    p = sub.add_parser("pngstat")
    p.add_argument("file")
    p.add_argument("--rows", type=int, default=None, help="read only the top ROWS rows (faster)")
    args = ap.parse_args()
    if args.cmd == "inspect":
        inspect(args)
    else:
        json.dump(pngstat(args.file, args.rows), sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
