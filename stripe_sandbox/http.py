"""A minimal asyncio HTTP/1.1 server (keep-alive, pipelining-safe, no framework)."""

from __future__ import annotations

import asyncio
from collections import deque

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Request Failed", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}


class Request:
    __slots__ = ("body", "headers", "method", "target")

    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        self.headers = headers  # lower-case name -> str
        self.body = body


class Response:
    __slots__ = ("action", "body", "delay", "headers", "status")

    def __init__(self, status=200, body=b"", headers=None, delay=0.0, action=None):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.delay = delay
        self.action = action  # None | "reset" | "truncate"


def encode(resp: Response, keep_alive: bool) -> bytes:
    body = resp.body
    if resp.action == "truncate":
        # announce the full length but send half, then close: a truncated JSON body with 200
        full = len(body)
        body = body[: max(1, full // 2)]
    else:
        full = len(body)
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'OK')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {full}\r\n"]
    for k, v in resp.headers:
        head.append(f"{k}: {v}\r\n")
    head.append("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
    return "".join(head).encode("latin-1") + body


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app):
        self.app = app
        self.buf = b""
        self.transport = None
        self.pending: deque = deque()
        self.busy = False
        self.closed = False
        self.slow_task: asyncio.Future | None = None  # the loop keeps only a weak reference to a task

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
            except ValueError:
                self.transport.close()
                return
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            clen = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + clen:
                return
            body = self.buf[end + 4:end + 4 + clen]
            self.buf = self.buf[end + 4 + clen:]
            self.pending.append(Request(method, target, headers, body))
            if not self.busy:
                self._drain()

    def _drain(self):
        while self.pending and not self.closed:
            req = self.pending.popleft()
            resp = self.app(req)
            if resp.delay > 0 or resp.action:
                self.busy = True
                self.slow_task = asyncio.ensure_future(self._slow(req, resp))
                return
            self.transport.write(encode(resp, req.headers.get("connection", "").lower() != "close"))
            if req.headers.get("connection", "").lower() == "close":
                self.transport.close()
                return

    async def _slow(self, req, resp):
        if resp.delay > 0:
            await asyncio.sleep(resp.delay)
        self.busy = False
        if self.closed:
            return
        if resp.action == "reset":
            sock = self.transport.get_extra_info("socket")
            try:
                import socket
                import struct
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except Exception:
                pass
            self.transport.abort()
            return
        self.transport.write(encode(resp, resp.action != "truncate"))
        if resp.action == "truncate":
            self.transport.close()
            return
        self._drain()
