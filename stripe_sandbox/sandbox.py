"""`Sandbox`: the store + HTTP server on 127.0.0.1, in a background thread, with the control API."""

from __future__ import annotations

import asyncio
import threading

from .app import App
from .http import HttpProtocol
from .store import Store


class Sandbox:
    """with Sandbox(seed=1, scale=0.1, volumes={"charges": 1000}) as sb: sb.url ..."""

    def __init__(self, seed: int = 0, scale: float = 1.0, volumes: dict | None = None, accounts: int = 0,
                 history_days: float = 365, future_days: float = 0, now: int | None = None,
                 keys=("sk_test_sandbox",), latency_ms: float = 0, jitter_ms: float = 0, rps: float | None = None,
                 endpoint_rps: float | None = None, host: str = "127.0.0.1", port: int = 0, table=None,
                 schema_dir=None):
        self.store = Store(seed=seed, scale=scale, volumes=volumes, accounts=accounts, history_days=history_days,
                           future_days=future_days, now=now, table=table, schema_dir=schema_dir)
        self.app = App(self.store, keys=keys, latency_ms=latency_ms, jitter_ms=jitter_ms, rps=rps,
                       endpoint_rps=endpoint_rps)
        self.host, self.port = host, port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(
                self.loop.create_server(lambda: HttpProtocol(self.app), self.host, self.port, reuse_address=True))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self._server.close()
            self.loop.run_until_complete(self._server.wait_closed())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="stripe-sandbox", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def close(self):
        if self.loop and self._thread:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ control API
    @property
    def now(self) -> int:
        return self.store.clock

    def set_clock(self, ts: int) -> int:
        with self.store.lock:
            self.store.clock = int(ts)
        return self.store.clock

    def advance(self, seconds: int) -> int:
        return self.set_clock(self.store.clock + int(seconds))

    def create(self, stream: str, fields: dict | None = None, at: int | None = None, account: int | str = 0,
               parent: str | None = None) -> dict:
        return self.store.create(stream, fields, at, self._acct(account), parent)

    def update(self, stream: str, id: str, fields: dict, at: int | None = None, account: int | str = 0) -> dict:
        return self.store.update(stream, id, fields, at, self._acct(account))

    def delete(self, stream: str, id: str, at: int | None = None, account: int | str = 0) -> dict:
        return self.store.delete(stream, id, at, self._acct(account))

    def truth(self, stream: str, account: int | str | None = None) -> list[dict]:
        return self.store.truth(stream, self._acct(account or 0))

    def account_ids(self) -> list[str]:
        """Connected account ids (for Stripe-Account)."""
        return [self.store.account_id(a) for a in range(1, self.store.n_accounts + 1)]

    def _acct(self, account) -> int:
        return self.store.account_number(account)

    # faults / limits / latency
    def add_fault(self, path: str, kind: str, count: int | None = None, rate: float | None = None, skip: int = 0,
                  delay: float = 0.0, method: str | None = None, product: str = "Issuing",
                  permission: str | None = None) -> int:
        return self.app.faults.add(path, kind, count=count, rate=rate, skip=skip, delay=delay, method=method,
                                   product=product, permission=permission)

    def clear_faults(self, rule_id: int | None = None):
        self.app.faults.clear(rule_id)

    def set_limits(self, rps: float | None = None, endpoint_rps: float | None = None):
        self.app.limiter.rps = rps
        self.app.limiter.endpoint_rps = endpoint_rps
        self.app.limiter.windows.clear()

    def set_latency(self, latency_ms: float = 0, jitter_ms: float = 0):
        self.app.latency_ms, self.app.jitter_ms = latency_ms, jitter_ms

    # Connect OAuth
    def issue_refresh_token(self, account: int | str = 1) -> str:
        """A refresh token of a connected account, as the platform would hold after OAuth."""
        return self.app.oauth.issue_refresh_token(self._acct(account))

    def revoke_refresh_token(self, token: str) -> None:
        self.app.oauth.revoke(token)

    def expire_access_tokens(self, after_uses: int | None = 0) -> None:
        """Expire issued access tokens now (0) or make new ones expire after `after_uses` requests."""
        if after_uses == 0:
            self.app.oauth.expire_access_tokens()
        else:
            self.app.oauth.access_token_uses = after_uses

    # stats
    @property
    def requests(self) -> list[dict]:
        return list(self.app.log)

    def stats(self) -> dict:
        return self.app.stats()

    def reset_stats(self):
        self.app.reset_stats()


def control_dispatch(app: App, method: str, cmd: str, a: dict):
    """HTTP control API: POST /_sandbox/<cmd> with a JSON body (or GET with query)."""
    sb = Sandbox.__new__(Sandbox)
    sb.store, sb.app = app.store, app
    cmd = cmd.strip("/")
    if cmd == "now":
        return {"now": sb.now}
    if cmd == "clock":
        if "advance" in a:
            return {"now": sb.advance(int(a["advance"]))}
        if "ts" in a:
            return {"now": sb.set_clock(int(a["ts"]))}
        return {"now": sb.now}
    if cmd == "create":
        return sb.create(a["stream"], a.get("fields"), a.get("at"), a.get("account", 0), a.get("parent"))
    if cmd == "update":
        return sb.update(a["stream"], a["id"], a.get("fields") or {}, a.get("at"), a.get("account", 0))
    if cmd == "delete":
        return sb.delete(a["stream"], a["id"], a.get("at"), a.get("account", 0))
    if cmd == "truth":
        return sb.truth(a["stream"], a.get("account"))
    if cmd == "stats":
        return sb.stats()
    if cmd == "stats/reset":
        sb.reset_stats()
        return {"ok": True}
    if cmd == "requests":
        return sb.requests[-int(a.get("last", 1000)):]
    if cmd == "faults":
        kw = {k: a[k] for k in ("count", "rate", "skip", "delay", "method", "product", "permission") if k in a}
        return {"id": sb.add_fault(a["path"], a["kind"], **kw)}
    if cmd == "faults/clear":
        sb.clear_faults(a.get("id"))
        return {"ok": True}
    if cmd == "limits":
        sb.set_limits(a.get("rps"), a.get("endpoint_rps"))
        return {"ok": True}
    if cmd == "latency":
        sb.set_latency(float(a.get("latency_ms", 0)), float(a.get("jitter_ms", 0)))
        return {"ok": True}
    if cmd == "accounts":
        return sb.account_ids()
    raise KeyError(f"unknown control command {cmd!r}")
