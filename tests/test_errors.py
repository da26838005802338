"""Fails safe: retries, clear errors, skipped streams, secrets and TLS — against sandbox faults."""

import http.server
import json
import os
import ssl
import subprocess
import threading
from datetime import datetime

import pytest
from conftest import SANDBOX_NOW, TargetModel, catalog_for, expected_rows, tap_config

STREAMS = ["charges", "customers", "invoices", "invoice_line_items", "products", "refunds"]


def assert_complete(result, sandbox, streams=STREAMS):
    model = TargetModel().apply(result.messages)
    for stream in streams:
        expected = expected_rows(sandbox, stream)
        assert set(model.rows(stream)) == set(expected), stream


def _epoch(value) -> int | None:
    """Unix seconds of an RFC 3339 string (or of an int)."""
    if value is None or isinstance(value, int):
        return value
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _cursors(state: dict | None):
    """(stream, account key, cursors) of every account of every stream in a state."""
    for stream, bookmark in ((state or {}).get("bookmarks") or {}).items():
        for account, cursors in (bookmark.get("accounts") or {}).items():
            yield stream, account, cursors


class _Truth:
    """The sandbox's objects per (stream, account key), each with the creation time of its
    top-level ancestor (a child is read with its parent: its parent's window covers it)."""

    def __init__(self, sandbox):
        self.sandbox, self.cache = sandbox, {}

    def account(self, key: str):
        return None if key == "default" else key

    def objects(self, stream: str, key: str) -> dict[str, int]:
        if (stream, key) not in self.cache:
            from tap_stripe.tap import SPECS

            store, spec = self.sandbox.store, SPECS[stream]
            acct = store.account_number(self.account(key) or 0)
            out = {}
            for obj in self.sandbox.truth(stream, self.account(key)):
                if spec.parent is None:
                    out[obj["id"]] = obj[spec.created_field]
                else:
                    st = store.streams[stream]
                    out[obj["id"]] = store.created(acct, st, store.locate(acct, st, obj["id"])[0])
            self.cache[(stream, key)] = out
        return self.cache[(stream, key)]

    def events(self, key: str) -> list[dict]:
        if ("events", key) not in self.cache:
            self.cache[("events", key)] = self.sandbox.truth("events", self.account(key))
        return self.cache[("events", key)]


def assert_state_never_ahead(messages, sandbox, streams=STREAMS, *, state=None, exercised=("created",),
                             start: int | None = None):
    """Every STATE's cursors, of every account in it, only pass what was emitted before it:

    - `created`: every object created in [the run's starting cursor, cursor) (a child: its
      top-level ancestor) was emitted;
    - `resync` {"version", "created"}: every object created before `created` (since where a
      resumed resync of the same version started) was emitted with that table version;
    - `events`: every event of the stream's types in [the run's starting cursor, cursor) was
      applied: its object was emitted at or after the event (`_updated_at`), or, during a full
      re-read, emitted at all;
    - `report`: every report run of the sandbox that the bookmark passes succeeded and its rows
      were emitted, and those runs tile the time from where the run started to the bookmark
      (single-payout reports: every paid automatic payout it passes had its rows emitted).

    `state` is the state the run started from, `start` its `start_date` (unix seconds). Each kind
    in `exercised` must have checked something (an object, an event or a report run) in some STATE."""
    from tap_stripe.reports.columns import REPORTS_BY_NAME
    from tap_stripe.tap import SPECS

    truth, first = _Truth(sandbox), start
    own = sandbox.store.account_id(0)  # records name the key's own account; its state key is "default"
    start = {(s, a, kind): value for s, a, cursors in _cursors(state) for kind, value in cursors.items()}
    states = [state] + [m["value"] for m in messages if m["type"] == "STATE"]
    resyncing = {(s, a) for value in states for s, a, c in _cursors(value) if c.get("resync")}
    emitted: dict[tuple, list] = {}  # (stream, account, id) -> [(_updated_at, version)]
    reports: dict[tuple, list] = {}  # (stream, account) -> report records
    checked = {"created": 0, "resync": 0, "events": 0, "report": 0}
    accounts_checked: set[str] = set()

    def need(ok: bool, what: str, kind: str, account: str):
        assert ok, what
        checked[kind] += 1
        accounts_checked.add(account)

    for message in messages:
        if message["type"] == "RECORD":
            record, stream = message["record"], message["stream"]
            account = record.get("_account_id")
            account = "default" if account in (None, own) else account  # the key's own account
            if stream in REPORTS_BY_NAME:
                reports.setdefault((stream, account), []).append(record)
            elif "id" in record:
                emitted.setdefault((stream, account, record["id"]), []).append(
                    (_epoch(record.get("_updated_at")), message.get("version")))
            continue
        if message["type"] != "STATE":
            continue
        for stream, account, cursors in _cursors(message["value"]):
            if stream not in streams:
                continue
            spec = SPECS.get(stream)
            cursor = cursors.get("created")
            if cursor is not None and spec is not None:
                # A resumed full re-read emitted what it had read before its `resync` cursor in
                # the killed run; else this run starts at its starting `created` cursor.
                resumed = start.get((_root(SPECS, stream), account, "resync")) or {}
                since = resumed.get("created") if resumed else start.get((stream, account, "created"), first)
                # Spans a killed run emitted whole (`done`) were emitted by that run.
                done = resumed.get("done") if resumed else start.get((stream, account, "done"))
                for oid, created in truth.objects(stream, account).items():
                    if (since is None or created >= since) and created < cursor and not _inside(created, done):
                        need((stream, account, oid) in emitted, f"STATE moved {stream}/{account} `created` to "
                             f"{cursor} before emitting {oid} (created {created})", "created", account)
            # A `done` span (of a stream, or of its resync) claims every object in it was emitted.
            resync = cursors.get("resync") or {}
            for key, spans in (("done", cursors.get("done")), ("resync.done", resync.get("done"))):
                before = start.get((stream, account, "resync")) or {} if key == "resync.done" else {}
                known = before.get("done") if key == "resync.done" else start.get((stream, account, "done"))
                family = [stream] if key == "done" else \
                    [s for s in streams if s in SPECS and _root(SPECS, s) == stream]
                for member in family if spans else ():
                    for oid, created in truth.objects(member, account).items():
                        if _inside(created, spans) and not _inside(created, known):
                            need((member, account, oid) in emitted, f"STATE marked {stream}/{account} `{key}` "
                                 f"{spans} before emitting {member} {oid} (created {created})", "created", account)
            if resync and resync.get("created") is not None:
                before = start.get((stream, account, "resync")) or {}
                same = before.get("version") == resync["version"]
                since, done = (before.get("created"), before.get("done")) if same else (first, None)
                family = [s for s in streams if s in SPECS and _root(SPECS, s) == stream]
                for member in family:
                    for oid, created in truth.objects(member, account).items():
                        if (since is None or created >= since) and created < resync["created"] \
                                and not _inside(created, done):
                            versions = {v for _, v in emitted.get((member, account, oid), ())}
                            need(resync["version"] in versions, f"STATE moved {stream}/{account} `resync` to "
                                 f"{resync} before emitting {member} {oid} (created {created}) in that version",
                                 "resync", account)
            cursor = cursors.get("events")
            if cursor is not None and spec is not None:
                since = start.get((stream, account, "events"))
                if since is None:  # a first load: the list covers the events before its first bound
                    since = start.setdefault((stream, account, "events"), cursor)
                types = set(spec.event_types) | ({spec.deleted_event} if spec.deleted_event else set())
                for event in truth.events(account):
                    obj = event["data"]["object"]
                    if event["type"] not in types or obj.get("object") not in spec.object_types \
                            or not since <= event["created"] < cursor:
                        continue
                    times = [t for t, _ in emitted.get((stream, account, obj["id"]), ())]
                    applied = bool(times) if (stream, account) in resyncing else \
                        any(t is not None and t >= event["created"] for t in times)
                    need(applied, f"STATE moved {stream}/{account} `events` to {cursor} before applying "
                         f"{event['type']} {event['id']} of {obj['id']} (at {event['created']})", "events", account)
            bookmark = cursors.get("report")
            if bookmark is not None and stream in REPORTS_BY_NAME:
                for what in _report_checks(sandbox, REPORTS_BY_NAME[stream], account, truth,
                                           start.get((stream, account, "report")), first, bookmark,
                                           reports.get((stream, account), [])):
                    need(what[0], f"STATE moved {stream}/{account} `report` to {bookmark}: {what[1]}", "report",
                         account)
    for kind in exercised:
        assert checked[kind] > 0, f"no STATE had a `{kind}` cursor past anything: nothing was checked ({checked})"
    return accounts_checked


def _inside(created: int, spans: list | None) -> bool:
    """Whether `created` lies in one of a state's `done` spans."""
    return any(lo <= created < hi for lo, hi in spans or ())


def _root(specs, stream: str) -> str:
    while specs[stream].parent:
        stream = specs[stream].parent
    return stream


def _report_checks(sandbox, spec, account, truth, since, first, bookmark, records):
    """(ok, what) for every report run or payout a report bookmark passes."""
    reporting = sandbox.app.reporting
    acct = sandbox.store.account_number(truth.account(account) or 0)
    if since is not None and bookmark <= since:
        return  # not moved by this run: nothing it claims

    def rows(report_type, parameters) -> int:
        return len(reporting.csv(acct, report_type, parameters).decode().splitlines()) - 1

    if spec.params == "payout":
        lower = since + 1 if since is not None else max(first or 0, reporting.availability()[0])
        newest = max((t for t in reporting.report_types(acct) if t["id"].startswith(spec.family + ".")),
                     key=lambda t: t["version"])["id"]
        for payout in sandbox.truth("payouts", truth.account(account)):
            if payout.get("status") == "paid" and payout.get("automatic") is not False \
                    and lower <= payout["created"] <= bookmark:
                expected = rows(newest, {"payout": payout["id"]})
                got = sum(1 for r in records if r.get("_payout") == payout["id"])
                yield got >= expected, f"payout {payout['id']}: {got} rows emitted of {expected}"
        return
    runs = [r for r in reporting.created_runs(acct) if r["report_type"].startswith(spec.family + ".")
            and r["status"] == "succeeded" and r["parameters"]["interval_end"] <= bookmark
            and (since is None or r["parameters"]["interval_end"] > since)]
    yield bool(runs), "no succeeded report run behind it"
    ends = set()
    for run in runs:
        parameters = run["parameters"]
        start, end = parameters.get("interval_start"), parameters["interval_end"]
        expected = rows(run["report_type"], {k: v for k, v in parameters.items() if v is not None})
        got = sum(1 for r in records if _epoch(r.get("_interval_end")) == end
                  and (start is None or _epoch(r.get("_interval_start")) == start))
        yield got >= expected, f"run {run['id']} [{start}, {end}): {got} rows emitted of {expected}"
        ends.add(end)
    yield bookmark in ends, f"no succeeded run ends at it (ends: {sorted(ends)})"
    if spec.params == "interval":  # the intervals leave no gap from where this run started
        intervals = sorted({(r["parameters"]["interval_start"], r["parameters"]["interval_end"]) for r in runs})
        reached = since if since is not None else intervals[0][0]
        for lo, hi in intervals:
            yield lo <= reached, f"a gap [{reached}, {lo}) no run covered"
            reached = max(reached, hi)


# Loaded by the tap's interpreter (PYTHONPATH): a STATE after every segment the run emits, not at
# most once a second, so a run has STATEs between its windows however fast it is and the checks
# above do not depend on the machine's speed. Fails the run if the constant is gone.
STATE_EVERY_SEGMENT = """\
import os, sys
try:
    import tap_stripe.engine.emission as emission
    emission.STATE_INTERVAL  # at most one STATE per this many seconds
    emission.STATE_INTERVAL = 0
except Exception as exc:
    print(f"tests: cannot make the tap write a STATE after every segment: {exc!r}", file=sys.stderr)
    os._exit(97)
"""


@pytest.fixture
def run_tap(run_tap, tmp_path_factory):
    """conftest's run_tap, with a STATE after every emitted segment (STATE_EVERY_SEGMENT)."""
    folder = tmp_path_factory.mktemp("state_every_segment")
    (folder / "sitecustomize.py").write_text(STATE_EVERY_SEGMENT)
    pythonpath = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))

    def run(config, *, env=None, **kw):
        return run_tap(config, env={"PYTHONPATH": pythonpath, **(env or {})}, **kw)

    return run


@pytest.mark.parametrize("kind", ["500", "503", "reset", "truncated", "slow", "429"])
def test_each_fault_kind_at_a_steady_rate_loses_nothing(sandbox, run_tap, tmp_path, kind):
    # A slow response is held 5 s, five times the tap's timeout: it always times out, and an
    # ordinary response slowed by a loaded machine has a whole second before it would.
    sandbox.add_fault("/v1/*", kind, rate=0.25, delay=5.0)
    config = tap_config(sandbox, request_timeout=1.0, max_retries=12, summary_file=str(tmp_path / "summary.json"))
    result = run_tap(config, catalog=catalog_for(STREAMS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Retry" in result.stderr
    retries = sum(s["retries"] for s in json.loads((tmp_path / "summary.json").read_text())["streams"].values())
    assert retries > 0, "the run reports no retry under a steady fault rate"
    if kind != "slow":  # a slow response is logged as a plain 200: the tap timed out on it
        from tap_stripe.tap import SPECS

        # Faulted requests of the streams (not the run's startup probe, which no stream counts).
        prefixes = tuple("/".join(SPECS[s].path.split("/")[:3]) for s in STREAMS)
        faulted = [r for r in sandbox.requests if r["path"].startswith(prefixes)
                   and (r["status"] in (429, 500, 503) or r["fault"] in ("reset", "truncate"))]
        assert faulted and retries >= len(faulted), (len(faulted), retries)
    assert_complete(result, sandbox)
    assert_state_never_ahead(result.messages, sandbox)


def mutate(sandbox, account=None):
    """Creates, updates and deletes over STREAMS at the sandbox's time: events for the next run."""
    kw = {"account": account} if account else {}
    for charge in sandbox.truth("charges", account)[:3]:
        sandbox.update("charges", charge["id"], {"metadata": {"audit": "changed"}}, **kw)
    for _ in range(3):
        sandbox.create("charges", **kw)
    customers = sandbox.truth("customers", account)
    sandbox.update("customers", customers[0]["id"], {"email": "changed@example.com"}, **kw)
    sandbox.delete("customers", customers[1]["id"], **kw)
    products = sandbox.truth("products", account)
    sandbox.update("products", products[0]["id"], {"name": "Renamed"}, **kw)
    sandbox.delete("products", products[1]["id"], **kw)
    sandbox.update("invoices", sandbox.truth("invoices", account)[0]["id"], {"metadata": {"k": "v"}}, **kw)


def test_mixed_faults_over_a_multi_stream_sync_then_an_incremental_one(sandbox, run_tap):
    for kind in ("500", "503", "reset", "truncated", "429"):
        sandbox.add_fault("/v1/*", kind, rate=0.06)
    config = tap_config(sandbox, max_retries=15)
    result = run_tap(config, catalog=catalog_for(STREAMS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert_complete(result, sandbox)
    assert_state_never_ahead(result.messages, sandbox)
    sandbox.advance(86400)
    mutate(sandbox)
    sandbox.advance(60)
    second = run_tap(config, catalog=catalog_for(STREAMS), state=result.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    assert_state_never_ahead(second.messages, sandbox, state=result.last_state, exercised=("created", "events"))
    model = TargetModel().apply(result.messages).apply(second.messages)
    for stream in STREAMS:
        assert set(model.rows(stream)) == set(expected_rows(sandbox, stream)), stream


def test_faults_over_connected_accounts_check_every_account_in_the_state(run_tap):
    """Two connected accounts, a first load then an incremental run, both under faults: the
    cursors of each account in each STATE are checked against that account's objects."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=6, scale=0.03, now=SANDBOX_NOW, accounts=2, history_days=120,
                 volumes={"charges": 1200, "products": 6}) as sandbox:
        for kind in ("500", "503", "reset", "429"):
            sandbox.add_fault("/v1/*", kind, rate=0.05)
        config = tap_config(sandbox, connected_accounts="all", max_retries=15)
        streams = ["charges", "customers", "products"]
        first = run_tap(config, catalog=catalog_for(streams))
        assert first.returncode == 0, first.stderr[-2000:]
        accounts = set(sandbox.account_ids())
        assert {a for _, a, _ in _cursors(first.last_state)} == accounts
        assert assert_state_never_ahead(first.messages, sandbox, streams) == accounts
        sandbox.advance(86400)
        for account in accounts:
            mutate_some(sandbox, account)
        sandbox.advance(60)
        second = run_tap(config, catalog=catalog_for(streams), state=first.last_state)
        assert second.returncode == 0, second.stderr[-2000:]
        assert assert_state_never_ahead(second.messages, sandbox, streams, state=first.last_state,
                                        exercised=("created", "events")) == accounts


def mutate_some(sandbox, account):
    for charge in sandbox.truth("charges", account)[:2]:
        sandbox.update("charges", charge["id"], {"metadata": {"audit": "changed"}}, account=account)
    sandbox.create("charges", account=account)
    products = sandbox.truth("products", account)
    sandbox.update("products", products[0]["id"], {"name": "Renamed"}, account=account)
    sandbox.delete("products", products[1]["id"], account=account)


def test_a_full_resync_cut_short_by_exhausted_retries_resumes_in_its_version(run_tap):
    """A full re-read that fails for good part way: its `resync` cursor only passes objects
    emitted in its table version, and the resumed run finishes that version."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=4, scale=0.05, now=SANDBOX_NOW, volumes={"charges": 3000}) as sandbox:
        catalog = catalog_for(["charges"])
        config = tap_config(sandbox, max_retries=2, max_workers=1, full_resync_streams=["charges"])
        assert run_tap(config, catalog=catalog).returncode == 0  # a clean run counts the requests
        requests = sum(1 for r in sandbox.requests if r["path"] == "/v1/charges")
        sandbox.add_fault("/v1/charges", "500", skip=requests - 2)  # fails for good near the end
        failed = run_tap(config, catalog=catalog)
        assert failed.returncode != 0
        assert 0 < len(failed.records("charges")) < 3000
        resync = failed.last_state["bookmarks"]["charges"]["accounts"]["default"]["resync"]
        assert resync.get("created") is not None, resync
        assert_state_never_ahead(failed.messages, sandbox, ["charges"], exercised=("resync",))
        sandbox.clear_faults()
        resumed = run_tap(config, catalog=catalog, state=failed.last_state)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        versions = {m.get("version") for m in resumed.messages if m["type"] == "RECORD"}
        assert versions == {resync["version"]}
        assert_state_never_ahead(resumed.messages, sandbox, ["charges"], state=failed.last_state)
        model = TargetModel().apply(failed.messages).apply(resumed.messages)
        assert set(model.rows("charges")) == set(expected_rows(sandbox, "charges"))


def test_faults_on_report_runs_and_files_lose_no_report_rows(run_tap):
    """Report runs and their files under faults: a report bookmark only passes intervals (and
    payouts) whose rows were emitted."""
    from stripe_sandbox import Sandbox

    streams = ["report_balance_change_from_activity_itemized", "report_balance_summary",
               "report_ending_balance_reconciliation_summary", "report_payout_reconciliation_by_id_itemized"]
    with Sandbox(seed=5, scale=0.05, now=SANDBOX_NOW, history_days=20,
                 volumes={"balance_transactions": 300, "payouts": 8}) as sandbox:
        for payout in sandbox.truth("payouts"):
            sandbox.update("payouts", payout["id"], {"status": "paid", "automatic": True})
        sandbox.add_fault("/v1/reporting/*", "500", rate=0.2)
        sandbox.add_fault("/v1/files/*", "503", rate=0.2)
        config = tap_config(sandbox, start_date="2025-12-20T00:00:00Z", max_retries=15)  # 12 days
        result = run_tap(config, catalog=catalog_for(streams))
        assert result.returncode == 0, result.stderr[-2000:]
        assert any(r["status"] >= 500 for r in sandbox.requests if r["path"].startswith("/v1/reporting/"))
        assert {s for s, _, c in _cursors(result.last_state) if "report" in c} == set(streams)
        start = SANDBOX_NOW - 12 * 86400
        assert_state_never_ahead(result.messages, sandbox, streams, exercised=("report",), start=start)
        sandbox.advance(86400)
        second = run_tap(config, catalog=catalog_for(streams), state=result.last_state)
        assert second.returncode == 0, second.stderr[-2000:]
        assert_state_never_ahead(second.messages, sandbox, streams, state=result.last_state, exercised=("report",),
                                 start=start)


def test_retries_exhausted_exit_with_one_line_then_resume_completes(run_tap):
    from stripe_sandbox import Sandbox

    with Sandbox(seed=4, scale=0.05, now=SANDBOX_NOW, volumes={"charges": 5000}) as sandbox:
        _exhaust_then_resume(sandbox, run_tap)


def _exhaust_then_resume(sandbox, run_tap):
    catalog = catalog_for(["charges", "products"])
    config = tap_config(sandbox, max_retries=2, max_workers=1)
    assert run_tap(config, catalog=catalog).returncode == 0  # a clean run counts the requests
    requests = sum(1 for r in sandbox.requests if r["path"] == "/v1/charges")
    sandbox.add_fault("/v1/charges", "500", skip=requests * 2 // 3)  # fails for good two thirds in
    failed = run_tap(config, catalog=catalog)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("tap-stripe: error:")]
    assert len(errors) == 1
    for part in ("stream charges", "GET /v1/charges", "HTTP 500", "api_error", "request id req_"):
        assert part in errors[0], errors[0]
    assert_state_never_ahead(failed.messages, sandbox, ["charges", "products"])
    assert 0 < len(failed.records("charges")) < 5000
    sandbox.clear_faults()
    resumed = run_tap(config, catalog=catalog, state=failed.last_state)
    assert resumed.returncode == 0
    assert_state_never_ahead(resumed.messages, sandbox, ["charges", "products"], state=failed.last_state)
    model = TargetModel().apply(failed.messages).apply(resumed.messages)
    for stream in ("charges", "products"):
        assert set(model.rows(stream)) == set(expected_rows(sandbox, stream))


def test_invalid_key_stops_the_run_with_one_line(sandbox, run_tap):
    result = run_tap(tap_config(sandbox, api_key="sk_test_wrongkey123"), catalog=catalog_for(["charges"]))
    assert result.returncode != 0
    assert "tap-stripe: error:" in result.stderr and "HTTP 401" in result.stderr
    assert result.records() == []
    assert "wrongkey123" not in result.stderr


def test_403_on_one_stream_is_skipped_and_the_rest_goes_on(sandbox, run_tap):
    sandbox.add_fault("/v1/refunds", "403", permission="rak_refund_read")
    result = run_tap(tap_config(sandbox, summary_file="summary.json"), catalog=catalog_for(["refunds", "charges"]))
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "Skipping stream refunds" in line]
    assert warning and "rak_refund_read" in warning[0]
    assert result.records("refunds") == []
    assert len(result.records("charges")) == len(sandbox.truth("charges"))
    assert "permission denied" in result.stderr.split("refunds", 2)[-1]  # the summary table says why


def test_403_fails_the_run_when_asked(sandbox, run_tap):
    sandbox.add_fault("/v1/refunds", "403", permission="rak_refund_read")
    result = run_tap(tap_config(sandbox, on_permission_error="fail"), catalog=catalog_for(["refunds", "charges"]))
    assert result.returncode != 0
    assert "stream refunds" in result.stderr and "HTTP 403" in result.stderr


def test_product_not_set_up_is_skipped(sandbox, run_tap):
    sandbox.add_fault("/v1/issuing/*", "not_setup", product="Issuing")
    result = run_tap(tap_config(sandbox), catalog=catalog_for(["issuing_cards", "charges"]))
    assert result.returncode == 0, result.stderr
    assert "Skipping stream issuing_cards" in result.stderr and "product not set up" in result.stderr
    assert result.records("charges")


def test_no_secret_reaches_any_output_at_debug_level(run_tap, tmp_path):
    from stripe_sandbox import Sandbox

    key = "sk_test_Zq9SecretKeyValue42"
    with Sandbox(seed=5, scale=0.03, now=SANDBOX_NOW, keys=(key,)) as sandbox:
        for kind in ("500", "503", "reset", "truncated", "429", "403", "not_setup"):
            sandbox.add_fault("/v1/*", kind, rate=0.05)
        config = tap_config(sandbox, api_key=key, max_retries=15, sensitive_hash_key="hashkey-Secret-987",
                            sensitive_data={"categories": {"contact": "hash"}})
        result = run_tap(config, catalog=catalog_for(STREAMS),
                         env={"LOGLEVEL": "DEBUG", "TAP_STRIPE_LOGLEVEL": "DEBUG"})
        wrong = run_tap({**config, "api_key": "sk_test_WrongSecret77"}, catalog=catalog_for(["charges"]),
                        env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.records(), "the DEBUG run emitted no record"
    assert wrong.returncode != 0 and "HTTP 401" in wrong.stderr
    assert "DEBUG" in result.stderr
    for output in (result.stdout, result.stderr, wrong.stdout, wrong.stderr):
        for secret in ("Zq9SecretKeyValue42", "WrongSecret77", "hashkey-Secret-987"):
            assert secret not in output


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def tls_server(cert, key, version):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "balance", "available": [], "pending": [], "livemode": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("version,ok", [(ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)])
def test_tls_older_than_1_2_is_refused(run_tap, certificate, version, ok):
    cert, key = certificate
    server = tls_server(cert, key, version)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        result = run_tap({"api_key": "sk_test_abc", "api_url": url, "ca_bundle": str(cert), "max_retries": 0},
                         args=("--test",))
    finally:
        server.shutdown()
    if ok:
        assert result.returncode == 0, result.stderr
        assert "connection test passed" in result.stderr
    else:
        assert result.returncode != 0
        assert "TLS" in result.stderr and "1.2" in result.stderr
