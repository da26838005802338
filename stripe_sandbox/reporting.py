"""The Reporting API of the sandbox: report types, report runs and their CSV result files.

- `GET /v1/reporting/report_types[/{id}]`: the report types of Stripe's documentation
  (`report_types.py`), each family with its documented versions; `data_available_start` = the
  day the sandbox history starts, `data_available_end` = the start of the sandbox clock's UTC day
  minus `lag` seconds.
- `POST /v1/reporting/report_runs`: validated like Stripe (required parameters, interval
  inside the availability and start < end, known columns, timezone only where the version
  takes one); honours `Idempotency-Key` per account: the same key with the same parameters
  replays the first response (`Idempotent-Replayed: true`), with other parameters → 400
  `idempotency_error`; keys expire after 24 h of sandbox clock.
- A run is `pending` until it has been polled `polls` times or `seconds` of sandbox clock
  have passed since it was created; then `succeeded`, with a `file` result whose `url` is
  `<the sandbox's own base URL>/v1/files/file_…/contents`. Control can make the next run(s)
  of a type fail or stay pending.
- `GET /v1/reporting/report_runs/{id}` serves runs created here and falls through to the
  generated `report_runs` table otherwise; the list stays the generated table's.
- CSVs are computed from the account's balance transactions and payouts: a transaction is
  settled by the first paid automatic payout created at or after its `available_on`.

Control (Python: `sandbox.app.reporting`; HTTP: `POST /_sandbox/reporting/<cmd>`):
`fail_next` {report_type?, count?, error?}, `pending_next` {report_type?, count?},
`release` {run?}, `lifecycle` {polls?, seconds?, lag?}, `runs` {account?, report_type?}.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections import defaultdict
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from .http import Response
from .ids import random_token
from .report_types import FAMILIES, ZERO_DECIMAL, accepts_column, default_columns
from .report_types import RUN_PARAMETERS as KNOWN_PARAMETERS

DAY = 86400
KEY_TTL = DAY  # idempotency keys are kept ~24 h (https://docs.stripe.com/api/idempotent_requests)


def _catalogue():
    """family -> (versions, kind, timezone_from), from Stripe's documented report types."""
    return {family: (list(range(1, spec.versions + 1)), spec.params, spec.timezone_from)
            for family, spec in FAMILIES.items()}


def _err(status, message, type_="invalid_request_error", code=None, param=None):
    e = {"type": type_, "message": message}
    if code:
        e["code"] = code
    if param:
        e["param"] = param
    return Response(status, orjson.dumps({"error": e}))


def _money(minor: int, currency: str) -> str:
    if (currency or "").lower() in ZERO_DECIMAL:
        return str(int(minor))
    return f"{Decimal(int(minor)) / 100:.2f}"


def _fmt(ts, tz) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(int(ts), tz).strftime("%Y-%m-%d %H:%M:%S")


class Reporting:
    def __init__(self, store):
        self.store = store
        self.catalogue = _catalogue()
        self.runs: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}      # run id -> {"acct", "polls", "forced", "error", "base"}
        self.files: dict[str, tuple[int, bytes, dict]] = {}
        self.keys: dict[tuple, dict] = {}    # (acct, key) -> {"sig", "body", "at"}
        self.rules: list[dict] = []
        self.polls = 2
        self.seconds = 60
        self.lag = 0
        self.posts = 0
        self._n = 0

    # ------------------------------------------------------------------ report types
    def availability(self) -> tuple[int, int]:
        start = (self.store.start // DAY) * DAY
        end = (self.store.clock // DAY) * DAY - self.lag
        return start, max(start, end)

    def _type_obj(self, family: str, version: int) -> dict:
        columns = default_columns(family, version)  # before the timezone parameter: UTC columns only
        start, end = self.availability()
        return {"id": f"{family}.{version}", "object": "reporting.report_type", "data_available_end": end,
                "data_available_start": start, "default_columns": list(columns), "livemode": False,
                "name": family.replace("_", " ").replace(".", " ").title(), "updated": end, "version": version}

    def report_types(self, acct: int = 0) -> list[dict]:
        return [self._type_obj(f, v) for f, (versions, *_rest) in sorted(self.catalogue.items()) for v in versions]

    def _find_type(self, type_id: str):
        family, _, version = (type_id or "").rpartition(".")
        if family in self.catalogue and version.isdigit() and int(version) in self.catalogue[family][0]:
            return family, int(version)
        return None

    # ------------------------------------------------------------------ HTTP
    def handle(self, req, acct: int, path: str, query: str):
        """The response for a reporting/files request, or None to let the generic routes answer."""
        with self.store.lock:
            if path == "/v1/reporting/report_types" and req.method == "GET":
                if query:
                    name = parse_qsl(query, keep_blank_values=True)[0][0].split("[")[0]
                    if name != "expand":
                        return _err(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
                data = self.report_types(acct)
                return Response(200, orjson.dumps({"object": "list", "data": data, "has_more": False,
                                                   "url": "/v1/reporting/report_types"}))
            if path.startswith("/v1/reporting/report_types/") and req.method == "GET":
                type_id = path.rsplit("/", 1)[1]
                found = self._find_type(type_id)
                if not found:
                    return _err(404, f"No such report type: '{type_id}'", code="resource_missing", param="id")
                return Response(200, orjson.dumps(self._type_obj(*found)))
            if path == "/v1/reporting/report_runs" and req.method == "POST":
                return self.create(req, acct)
            if path.startswith("/v1/reporting/report_runs/") and req.method == "GET":
                run_id = path.rsplit("/", 1)[1]
                if run_id in self.runs:
                    if self.meta[run_id]["acct"] != acct:
                        return _err(404, f"No such report run: '{run_id}'", code="resource_missing", param="id")
                    self._advance(run_id, poll=True)
                    return Response(200, orjson.dumps(self.runs[run_id]))
                return None
            if path.startswith("/v1/files/") and path.endswith("/contents") and req.method == "GET":
                file_id = path.split("/")[3]
                entry = self.files.get(file_id)
                if entry is None or entry[0] != acct:
                    return _err(404, f"No such file upload: '{file_id}'", code="resource_missing", param="file")
                disposition = f'attachment; filename="{entry[2]["filename"]}"'
                return Response(200, entry[1], [("Content-Disposition", disposition)])
        return None

    def create(self, req, acct: int):
        try:
            form = parse_qsl(req.body.decode() if req.body else "", keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _err(400, "Invalid request body.")
        key = req.headers.get("idempotency-key")
        sig = sorted(form)
        if key:
            saved = self.keys.get((acct, key))
            if saved and self.store.clock - saved["at"] > KEY_TTL:
                del self.keys[(acct, key)]
                saved = None
            if saved:
                if saved["sig"] != sig:
                    return _err(400, f"Keys for idempotent requests can only be used with the same parameters they "
                                     f"were first used with. Try using a key other than '{key}' if you meant to "
                                     "execute a different request.", type_="idempotency_error")
                return Response(200, saved["body"], [("Idempotent-Replayed", "true")])
        checked = self._validate(form, acct)
        if isinstance(checked, Response):
            return checked
        report_type, params = checked
        self._n += 1
        self.posts += 1
        run_id = "frr_" + random_token((self.store.seed << 20) ^ (acct << 40) ^ self._n * 104729, 24)
        full = {k: None for k in ("columns", "connected_account", "currency", "interval_end", "interval_start",
                                  "payout", "reporting_category", "timezone")}
        full.update(params)
        run = {"id": run_id, "object": "reporting.report_run", "created": self.store.clock, "error": None,
               "livemode": False, "parameters": full, "report_type": report_type, "result": None,
               "status": "pending", "succeeded_at": None}
        forced, error = None, None
        for rule in self.rules:
            if rule["count"] > 0 and rule.get("report_type") in (None, report_type):
                rule["count"] -= 1
                forced, error = rule["outcome"], rule.get("error")
                break
        self.rules = [r for r in self.rules if r["count"] > 0]
        host = req.headers.get("host") or "127.0.0.1"
        self.runs[run_id] = run
        self.meta[run_id] = {"acct": acct, "polls": 0, "forced": forced, "error": error, "base": f"http://{host}"}
        body = orjson.dumps(run)
        if key:
            self.keys[(acct, key)] = {"sig": sig, "body": body, "at": self.store.clock}
        return Response(200, body)

    def _validate(self, form, acct):
        report_type = None
        params: dict = {}
        columns: list[str] = []
        for k, v in form:
            if k == "report_type":
                report_type = v
            elif k.startswith("parameters[columns]"):
                columns.append(v)
            elif k.startswith("parameters[") and k.endswith("]"):
                name = k[len("parameters["):-1]
                if name not in KNOWN_PARAMETERS:
                    return _err(400, f"Received unknown parameter: parameters[{name}]", code="parameter_unknown",
                                param=f"parameters[{name}]")
                params[name] = v
            elif k.split("[")[0] != "expand":
                return _err(400, f"Received unknown parameter: {k.split('[')[0]}", code="parameter_unknown",
                            param=k.split("[")[0])
        if not report_type:
            return _err(400, "Missing required param: report_type.", code="parameter_missing", param="report_type")
        found = self._find_type(report_type)
        if not found:
            return _err(400, f"Invalid report_type: {report_type!r} is not a report type available to this account.",
                        param="report_type")
        family, version = found
        _versions, kind, tz_from = self.catalogue[family]
        start, end = self.availability()
        for name in ("interval_start", "interval_end"):
            if name in params:
                try:
                    params[name] = int(params[name])
                except ValueError:
                    return _err(400, f"Invalid integer: {params[name]}", param=f"parameters[{name}]")
        required = {"interval": ("interval_start", "interval_end"), "interval_end": ("interval_end",),
                    "payout": ("payout",)}[kind]
        for name in required:
            if params.get(name) in (None, ""):
                return _err(400, f"Missing required param: parameters[{name}].", code="parameter_missing",
                            param=f"parameters[{name}]")
        for name in ("interval_start", "interval_end", "payout"):
            if name in params and name not in required:
                return _err(400, f"The parameter parameters[{name}] is not supported by {report_type}.",
                            param=f"parameters[{name}]")
        for name in ("interval_start", "interval_end"):
            if name in params and not start <= params[name] <= end:
                return _err(400, f"parameters[{name}] must be between data_available_start ({start}) and "
                                 f"data_available_end ({end}) of {report_type}.", param=f"parameters[{name}]")
        if "interval_start" in params and params["interval_start"] >= params["interval_end"]:
            return _err(400, "parameters[interval_start] must be before parameters[interval_end].",
                        param="parameters[interval_start]")
        if "timezone" in params:
            if tz_from is None or version < tz_from:
                return _err(400, f"The parameter parameters[timezone] is not supported by {report_type}.",
                            param="parameters[timezone]")
            try:
                ZoneInfo(params["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                return _err(400, f"Invalid timezone: {params['timezone']}", param="parameters[timezone]")
        if "payout" in params and self._payout(acct, params["payout"]) is None:
            return _err(400, f"No such payout: '{params['payout']}'", code="resource_missing",
                        param="parameters[payout]")
        for column in columns:
            if not accepts_column(family, column):
                return _err(400, f"Invalid column for {report_type}: {column}", param="parameters[columns]")
        if columns:
            params["columns"] = columns
        return report_type, params

    # ------------------------------------------------------------------ lifecycle
    def _advance(self, run_id: str, poll: bool):
        run, meta = self.runs[run_id], self.meta[run_id]
        if run["status"] != "pending":
            return
        if poll:
            meta["polls"] += 1
        if meta["forced"] == "pending":
            return
        if meta["forced"] == "failed":
            run["status"] = "failed"
            run["error"] = meta["error"] or "An unexpected error occurred while generating the report."
            return
        if meta["polls"] >= self.polls or self.store.clock >= run["created"] + self.seconds:
            self._succeed(run_id)

    def _succeed(self, run_id: str):
        run, meta = self.runs[run_id], self.meta[run_id]
        body = self.csv(meta["acct"], run["report_type"], run["parameters"])
        file_id = "file_" + random_token(zlib.crc32(run_id.encode()) ^ (self.store.seed << 33), 24)
        now = self.store.clock
        obj = {"id": file_id, "object": "file", "created": now, "expires_at": now + 365 * DAY,
               "filename": f"{run_id}.csv", "links": None, "purpose": "finance_report_run", "size": len(body),
               "title": f"FinanceReportRun {run_id}", "type": "csv",
               "url": f"{meta['base']}/v1/files/{file_id}/contents"}
        self.files[file_id] = (meta["acct"], body, obj)
        run.update(status="succeeded", succeeded_at=now, result=obj)

    # ------------------------------------------------------------------ control
    def fail_next(self, report_type=None, count=1, error=None):
        self.rules.append({"report_type": report_type, "count": int(count), "outcome": "failed", "error": error})

    def pending_next(self, report_type=None, count=1):
        self.rules.append({"report_type": report_type, "count": int(count), "outcome": "pending"})

    def release(self, run=None):
        with self.store.lock:
            for run_id, meta in self.meta.items():
                if (run is None or run_id == run) and meta["forced"] == "pending":
                    meta["forced"] = None
                    self._advance(run_id, poll=False)
                    if self.runs[run_id]["status"] == "pending":
                        self._succeed(run_id)

    def lifecycle(self, polls=None, seconds=None, lag=None):
        if polls is not None:
            self.polls = int(polls)
        if seconds is not None:
            self.seconds = int(seconds)
        if lag is not None:
            self.lag = int(lag)

    def created_runs(self, account=None, report_type=None) -> list[dict]:
        acct = self._acct(account) if account is not None else None
        return [dict(r) for rid, r in self.runs.items()
                if (acct is None or self.meta[rid]["acct"] == acct) and report_type in (None, r["report_type"])]

    def _acct(self, account) -> int:
        return self.store.account_number(account)

    def control(self, cmd: str, a: dict):
        if cmd == "fail_next":
            self.fail_next(a.get("report_type"), a.get("count", 1), a.get("error"))
        elif cmd == "pending_next":
            self.pending_next(a.get("report_type"), a.get("count", 1))
        elif cmd == "release":
            self.release(a.get("run"))
        elif cmd == "lifecycle":
            self.lifecycle(a.get("polls"), a.get("seconds"), a.get("lag"))
        elif cmd == "runs":
            return self.created_runs(a.get("account"), a.get("report_type"))
        else:
            raise KeyError(f"unknown reporting control command {cmd!r}")
        return {"ok": True}

    # ------------------------------------------------------------------ data
    def _objects(self, acct: int, stream: str) -> list[dict]:
        store = self.store
        st = store.streams.get(stream)
        if st is None:
            return []
        return [orjson.loads(store.render(acct, st, i))
                for _, i in store.iter_asc(acct, st, store.visible_lo(st), store.visible_hi(st))]

    def _payout(self, acct: int, payout_id: str):
        for p in self._objects(acct, "payouts"):
            if p.get("id") == payout_id:
                return p
        return None

    def _settling_payouts(self, acct: int) -> list[dict]:
        payouts = [p for p in self._objects(acct, "payouts")
                   if p.get("status") == "paid" and p.get("automatic") is not False]
        return sorted(payouts, key=lambda p: (p.get("created") or 0, p.get("id")))

    def _activity(self, acct: int) -> list[dict]:
        return [b for b in self._objects(acct, "balance_transactions") if b.get("reporting_category") != "payout"]

    @staticmethod
    def _assign(bts, payouts):
        """bt id -> settling payout (first paid payout created at/after available_on) or None."""
        out = {}
        for b in bts:
            avail = b.get("available_on") or b.get("created") or 0
            out[b["id"]] = next((p for p in payouts if (p.get("created") or 0) >= avail), None)
        return out

    def csv(self, acct: int, report_type: str, params: dict) -> bytes:
        family, _ = self._find_type(report_type)
        columns = params.get("columns") or self._type_obj(family, self._find_type(report_type)[1])["default_columns"]
        tz = ZoneInfo(params["timezone"]) if params.get("timezone") else dt_timezone.utc
        rows = self._rows(acct, family, params, tz)
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
        return out.getvalue().encode()

    def _bt_row(self, b: dict, payout: dict | None, tz) -> dict:
        cur = b.get("currency") or "usd"
        source = b.get("source") or ""
        row = {"balance_transaction_id": b["id"], "created_utc": _fmt(b.get("created"), dt_timezone.utc),
               "created": _fmt(b.get("created"), tz), "available_on_utc": _fmt(b.get("available_on"), dt_timezone.utc),
               "available_on": _fmt(b.get("available_on"), tz), "currency": cur,
               "gross": _money(b.get("amount") or 0, cur), "fee": _money(b.get("fee") or 0, cur),
               "net": _money(b.get("net") or 0, cur), "reporting_category": b.get("reporting_category") or "",
               "source_id": source, "description": b.get("description") or "",
               "customer_facing_amount": _money(abs(b.get("amount") or 0), cur), "customer_facing_currency": cur,
               "charge_id": source if source.startswith("ch_") else "",
               "payment_method_type": "card" if b.get("reporting_category") == "charge" else "",
               "trace_id": "", "trace_id_status": "unsupported"}
        if payout is not None:
            row["automatic_payout_id"] = payout["id"]
            row["automatic_payout_effective_at_utc"] = _fmt(payout.get("arrival_date"), dt_timezone.utc)
            row["automatic_payout_effective_at"] = _fmt(payout.get("arrival_date"), tz)
        return row

    def _rows(self, acct: int, family: str, params: dict, tz) -> list[dict]:
        s, e = params.get("interval_start"), params.get("interval_end")
        if family == "balance.summary":
            return self._balance_summary(acct, s, e, tz)
        if family.startswith("payouts."):
            rows = [self._payout_row(p, tz) for p in self._objects(acct, "payouts")
                    if s <= (p.get("arrival_date") or p.get("created") or 0) < e]
            return rows if family.endswith("itemized") else self._summarise(rows)
        activity = self._activity(acct)
        if family.startswith("balance_change_from_activity."):
            inside = [b for b in activity if s <= (b.get("created") or 0) < e]
            assigned = self._assign(inside, self._settling_payouts(acct))
            rows = [self._bt_row(b, assigned[b["id"]], tz) for b in inside]
            return rows if family.endswith("itemized") else self._summarise(rows)
        payouts = self._settling_payouts(acct)
        assigned = self._assign(activity, payouts)
        if family.startswith("payout_reconciliation.by_id."):
            rows = [self._bt_row(b, assigned[b["id"]], tz) for b in activity
                    if assigned[b["id"]] is not None and assigned[b["id"]]["id"] == params["payout"]]
        elif family.startswith("payout_reconciliation."):
            rows = [self._bt_row(b, assigned[b["id"]], tz) for b in activity
                    if assigned[b["id"]] is not None and s <= (assigned[b["id"]].get("arrival_date") or 0) < e]
        else:  # ending_balance_reconciliation: created before the end, not yet paid out by then
            rows = [self._bt_row(b, None, tz) for b in activity if (b.get("created") or 0) < e
                    and (assigned[b["id"]] is None or (assigned[b["id"]].get("created") or 0) >= e)]
        return rows if family.endswith("itemized") else self._summarise(rows)

    def _payout_row(self, p: dict, tz) -> dict:
        cur = p.get("currency") or "usd"
        eff = p.get("arrival_date") or p.get("created")
        return {"payout_id": p["id"], "effective_at_utc": _fmt(eff, dt_timezone.utc), "effective_at": _fmt(eff, tz),
                "currency": cur, "gross": _money(-(p.get("amount") or 0), cur), "fee": _money(0, cur),
                "net": _money(-(p.get("amount") or 0), cur), "reporting_category": "payout",
                "description": p.get("description") or "",
                "payout_expected_arrival_date":
                    datetime.fromtimestamp(int(eff), tz).strftime("%Y-%m-%d") if eff else "",
                "payout_status": p.get("status") or "", "payout_type": p.get("type") or "",
                "payout_description": p.get("description") or "",
                "payout_destination_id": p.get("destination") if isinstance(p.get("destination"), str) else "",
                "balance_transaction_id":
                    p.get("balance_transaction") if isinstance(p.get("balance_transaction"), str) else "",
                "trace_id": "", "trace_id_status": "unsupported"}

    @staticmethod
    def _summarise(rows: list[dict]) -> list[dict]:
        groups: dict = defaultdict(lambda: [0, Decimal(0), Decimal(0), Decimal(0)])
        for r in rows:
            g = groups[(r["currency"], r["reporting_category"])]
            g[0] += 1
            g[1] += Decimal(r["gross"])
            g[2] += Decimal(r["fee"])
            g[3] += Decimal(r["net"])
        return [{"currency": cur, "reporting_category": cat, "count": str(g[0]), "gross": str(g[1]),
                 "fee": str(g[2]), "net": str(g[3])} for (cur, cat), g in sorted(groups.items())]

    def _balance_summary(self, acct: int, s: int, e: int, tz) -> list[dict]:
        bts = self._objects(acct, "balance_transactions")
        per: dict = defaultdict(lambda: [0, 0, 0])
        for b in bts:
            c = b.get("created") or 0
            cur = b.get("currency") or "usd"
            if c < s:
                per[cur][0] += b.get("net") or 0
            elif c < e:
                per[cur][2 if b.get("reporting_category") == "payout" else 1] += b.get("net") or 0
        day = lambda t: datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d")
        rows = []
        for cur, (start, activity, payouts) in sorted(per.items()):
            rows += [{"category": "starting_balance", "description": f"Starting balance ({day(s)})",
                      "net_amount": _money(start, cur), "currency": cur},
                     {"category": "activity", "description": "Activity", "net_amount": _money(activity, cur),
                      "currency": cur},
                     {"category": "payouts", "description": "Total payouts", "net_amount": _money(payouts, cur),
                      "currency": cur},
                     {"category": "ending_balance", "description": f"Ending balance ({day(e)})",
                      "net_amount": _money(start + activity + payouts, cur), "currency": cur}]
        return rows
