"""Incremental sync that loses nothing, over real HTTP against the sandbox, in subprocesses."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, SANDBOX_NOW, TargetModel, catalog_for, comparable, expected_rows, tap_config

from tap_stripe.streams import STREAMS as TABLE_STREAMS

DAY = 86400
STREAMS = ["charges", "customers", "invoices", "invoice_line_items", "subscriptions", "subscription_items",
           "products", "prices", "coupons", "refunds"]


def assert_target_matches_sandbox(model: TargetModel, sandbox, streams=STREAMS):
    for stream in streams:
        expected = expected_rows(sandbox, stream)
        got = model.rows(stream)
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        assert not missing and not extra, f"{stream}: missing {missing[:5]}, extra {extra[:5]}"
        for key, record in expected.items():
            assert comparable(got[key]) == comparable(record), f"{stream} {key} differs"


def mutate(sandbox, rng):
    """Creates, updates and deletes across streams at the sandbox's current time."""
    changed = {}
    charges = sandbox.truth("charges")
    for charge in rng.sample(charges, 3):
        sandbox.update("charges", charge["id"], {"metadata": {"audit": "changed"}, "description": "updated"})
    changed["charges"] = [sandbox.create("charges")["id"] for _ in range(4)]
    customers = sandbox.truth("customers")
    sandbox.update("customers", customers[0]["id"], {"email": "new@example.com"})
    sandbox.delete("customers", customers[1]["id"])
    products = sandbox.truth("products")
    sandbox.delete("products", products[0]["id"])
    sandbox.update("products", products[1]["id"], {"name": "Renamed"})
    invoices = sandbox.truth("invoices")
    sandbox.update("invoices", invoices[0]["id"], {"status": "void"})
    subscriptions = sandbox.truth("subscriptions")
    sandbox.update("subscriptions", subscriptions[0]["id"], {"status": "canceled"})
    coupons = sandbox.truth("coupons")
    if coupons:
        sandbox.delete("coupons", coupons[0]["id"])
    return changed


def test_initial_then_incremental_run_matches_the_sandbox(sandbox, run_tap):
    catalog = catalog_for(STREAMS)
    config = tap_config(sandbox, lookback_seconds=60)
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    model = TargetModel().apply(first.messages)
    assert_target_matches_sandbox(model, sandbox)

    sandbox.advance(DAY)
    mutate(sandbox, random.Random(1))
    sandbox.advance(60)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr
    model.apply(second.messages)
    assert_target_matches_sandbox(model, sandbox)
    # Incremental: far fewer charges than the first load, and the changed ones came from events.
    assert len(second.records("charges")) < len(first.records("charges")) / 2
    updated = [r for r in second.records("charges") if r.get("description") == "updated"]
    assert len(updated) == 3
    assert all(r["_updated_at"] for r in second.records())


def test_deletions_become_soft_delete_records(sandbox, run_tap):
    catalog = catalog_for(["products"])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog)
    product = sandbox.truth("products")[0]
    sandbox.advance(3600)
    sandbox.delete("products", product["id"])
    sandbox.advance(1)  # the run's upper bound is exclusive: the deletion's second must be over
    second = run_tap(config, catalog=catalog, state=first.last_state)
    deletions = [r for r in second.records("products") if r.get("deleted")]
    assert [d["id"] for d in deletions] == [product["id"]]
    assert deletions[0]["_sdc_deleted_at"] and deletions[0]["_updated_at"] == deletions[0]["_sdc_deleted_at"]


def test_children_follow_their_changed_parent(sandbox, run_tap):
    catalog = catalog_for(["subscriptions", "subscription_items"])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog)
    subscription = sandbox.truth("subscriptions")[0]
    sandbox.advance(3600)
    sandbox.update("subscriptions", subscription["id"], {"metadata": {"plan": "upgraded"}})
    sandbox.advance(1)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    items = second.records("subscription_items")
    assert items and {i["subscription"] for i in items} == {subscription["id"]}


def test_full_resync_marks_table_versions(sandbox, run_tap):
    result = run_tap(tap_config(sandbox), catalog=catalog_for(["customers"]))
    versions = {m.get("version") for m in result.messages if m["type"] == "RECORD"}
    activations = [m for m in result.messages if m["type"] == "ACTIVATE_VERSION"]
    assert len(versions) == 1 and None not in versions
    assert [a["version"] for a in activations] == list(versions)
    assert result.messages.index(activations[-1]) > max(
        i for i, m in enumerate(result.messages) if m["type"] == "RECORD")


def test_events_bookmark_older_than_30_days_falls_back_to_a_full_read(sandbox, run_tap):
    catalog = catalog_for(["charges"])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog)
    model = TargetModel().apply(first.messages)
    charge = sandbox.truth("charges")[5]
    sandbox.advance(2 * DAY)
    sandbox.update("charges", charge["id"], {"description": "changed long ago"})
    sandbox.advance(40 * DAY)  # the update's event is gone from /v1/events by now
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0
    assert "older than Stripe keeps events" in second.stderr
    model.apply(second.messages)
    assert model.rows("charges")[charge["id"]]["description"] == "changed long ago"
    assert_target_matches_sandbox(model, sandbox, ["charges"])


def test_objects_created_in_the_bookmark_second_are_not_dropped(sandbox, run_tap):
    catalog = catalog_for(["charges"])
    config = tap_config(sandbox, lookback_seconds=0)
    first = run_tap(config, catalog=catalog)
    cursor = first.last_state["bookmarks"]["charges"]["accounts"]["default"]["created"]
    assert cursor == sandbox.now
    late = [sandbox.create("charges", at=cursor)["id"] for _ in range(3)]
    sandbox.advance(10)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert set(late) <= {r["id"] for r in second.records("charges")}


def test_an_empty_window_still_moves_the_bookmark(sandbox, run_tap):
    catalog = catalog_for(["charges"])
    config = tap_config(sandbox, lookback_seconds=0)
    first = run_tap(config, catalog=catalog)
    sandbox.advance(DAY)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0 and second.records("charges") == []
    assert second.last_state["bookmarks"]["charges"]["accounts"]["default"]["created"] == sandbox.now


def test_more_than_ten_thousand_objects_in_one_second(sandbox, run_tap):
    catalog = catalog_for(["charges"])
    config = tap_config(sandbox)
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr[-2000:]
    sandbox.advance(DAY)
    burst = {sandbox.create("charges", at=sandbox.now - 100)["id"] for _ in range(10_050)}
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr[-2000:]
    ids = [r["id"] for r in second.records("charges")]
    assert burst <= set(ids)
    assert len(ids) == len(set(ids)), "a one-second window must not be read twice"


KILLS = 3  # killed attempts per seed before the run that goes to the end


@pytest.mark.e2e  # kills and resumes the tap as a process against a sandbox
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_at_a_random_point_then_resumed_loses_nothing(tmp_path, seed):
    """SIGKILL mid-run, resume from the last STATE the target received, three times; then a run
    to the end. A target commits at STATE, so what a killed run sent after its last STATE is lost
    and the resumed runs must send it again: the records received up to each killed run's last
    STATE, plus the last run's, must hold every object of the sandbox.

    Kill points come from the run's own output: a resumed run that loses nothing still has to send
    a SCHEMA per stream and every object not yet delivered, so the kill falls on one of those
    lines (drawn at random) and always happens. The tap writes a STATE after every segment it
    emits (test_errors.STATE_EVERY_SEGMENT), so runs resume from STATEs all along the run."""
    from test_errors import STATE_EVERY_SEGMENT

    from stripe_sandbox import Sandbox

    rng = random.Random(seed)
    streams = ["charges", "invoices", "invoice_line_items", "products", "refunds", "events"]
    volumes = {"charges": 600, "invoices": 150, "refunds": 100, "products": 60}
    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, history_days=200, volumes=volumes) as sandbox:
        truth = {(stream, i) for stream in streams for i in expected_rows(sandbox, stream)}
        assert len(truth) > 1000
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog_for(streams)))
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(tap_config(sandbox, max_workers=4)))
        state_path = tmp_path / "state.json"
        sandbox.set_latency(20, 10)
        command = [sys.executable, "-m", "tap_stripe", "--config", str(config_path), "--catalog", str(catalog_path)]
        (tmp_path / "sitecustomize.py").write_text(STATE_EVERY_SEGMENT)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
        delivered: set[tuple[str, str]] = set()  # committed by the target: records before a STATE
        state, kills = None, []
        for attempt in range(KILLS + 1):
            if state is not None:
                state_path.write_text(json.dumps(state))
            kill_after = None
            if attempt < KILLS:
                still_owed = len(streams) + len(truth - delivered)  # lines a correct resumed run still sends
                kill_after = rng.randrange(1, still_owed + 1)
            proc = subprocess.Popen(command + (["--state", str(state_path)] if state is not None else []),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            uncommitted: list[tuple[str, str]] = []
            lines = 0
            for line in proc.stdout:
                message = json.loads(line)
                lines += 1
                if message["type"] == "RECORD":
                    uncommitted.append((message["stream"], message["record"]["id"]))
                elif message["type"] == "STATE":
                    state = message["value"]
                    delivered.update(uncommitted)
                    uncommitted = []
                if kill_after is not None and lines >= kill_after:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            proc.stdout.close()
            proc.wait()
            if kill_after is None:
                assert proc.returncode == 0
                delivered.update(uncommitted)  # the target flushes at the end of its input
            else:
                # The output is cut there whether the tap was still running or had written all
                # of it into the pipe already: the rest never reaches the target.
                assert lines == kill_after, f"the run ended after {lines} lines, before line {kill_after}"
                kills.append(kill_after)
    assert len(kills) == KILLS, kills
    lost = truth - delivered
    assert not lost, f"lost {len(lost)} objects, e.g. {sorted(lost)[:5]} (kills at lines {kills})"


# Every stream the catalog selects by default: every generated table, each with its committed
# schema file (the report streams, built from report columns, are opt-in).
# Every generated table but the opt-in ones (overrides.py: a request per parent for data few accounts have).
DEFAULT_STREAMS = {p.stem for p in (ROOT / "tap_stripe" / "schemas").glob("*.json")} - {
    "entitlements_active_entitlements", "payment_intent_amount_details_line_items"}
# Streams legitimately empty in the `sandbox` fixture: it has no connected accounts (Connect's
# own tables and their children). Every other stream has records there.
EMPTY_IN_SMALL_SANDBOX = {"accounts", "capabilities", "external_accounts", "persons"}


def test_full_catalog_run_has_unique_keys_valid_records_and_a_clean_final_state(sandbox, run_tap):
    """Every stream at once: records validate, keys are unique per stream, the final STATE is ours."""
    from jsonschema import Draft202012Validator, FormatChecker

    result = run_tap(tap_config(sandbox))
    assert result.returncode == 0, result.stderr[-2000:]
    schemas = {m["stream"]: m for m in result.messages if m["type"] == "SCHEMA"}
    assert len(schemas) >= 90
    assert {spec.name for spec in TABLE_STREAMS if spec.selected_by_default} == DEFAULT_STREAMS
    assert set(schemas) == DEFAULT_STREAMS, f"missing {sorted(DEFAULT_STREAMS - set(schemas))}"
    validators = {s: Draft202012Validator(m["schema"], format_checker=FormatChecker()) for s, m in schemas.items()}
    keys: dict[str, set] = {}
    for message in result.messages:
        if message["type"] != "RECORD":
            continue
        stream, record = message["stream"], message["record"]
        errors = list(validators[stream].iter_errors(record))
        assert not errors, f"{stream}: {errors[0].message[:200]} at {list(errors[0].path)}"
        key_properties = schemas[stream]["key_properties"]
        if key_properties:
            key = tuple(record[k] for k in key_properties)
            assert key not in keys.setdefault(stream, set()), f"{stream}: duplicate key {key}"
            keys[stream].add(key)
    assert len(keys) >= 80, "most streams must have data in the sandbox"
    keyed = {s for s in DEFAULT_STREAMS if schemas[s]["key_properties"]}
    assert keyed == DEFAULT_STREAMS - {"balance"}
    assert set(keys) == keyed - EMPTY_IN_SMALL_SANDBOX, (
        f"no records: {sorted(keyed - EMPTY_IN_SMALL_SANDBOX - set(keys))}, "
        f"unexpected records: {sorted(set(keys) & EMPTY_IN_SMALL_SANDBOX)}")
    final = result.last_state
    assert set(final) == {"bookmarks", "tap_stripe"}
    assert "progress_markers" not in json.dumps(final)
    for stream, bookmark in final["bookmarks"].items():
        for cursors in bookmark["accounts"].values():
            assert "resync" not in cursors, f"{stream}: a finished run leaves no resync in progress"
    assert final["bookmarks"]["charges"]["accounts"]["default"]["created"] == sandbox.now


def test_a_long_window_is_shared_by_idle_workers_and_no_state_passes_an_unwritten_record(run_tap):
    """A window paged one request after another gets its older half handed to an idle
    worker; every object still arrives exactly once, pages are written as they arrive, yet
    no STATE's bookmark passes a record not yet written, and the bookmark ends at the run's
    bound."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=5, now=SANDBOX_NOW, history_days=2, latency_ms=40, volumes={"charges": 1900}) as sb:
        run = run_tap(tap_config(sb, max_workers=8), catalog=catalog_for(["charges"]))
        assert run.returncode == 0, run.stderr
        records = run.records("charges")
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)) == 1900
        created_at = {o["id"]: o["created"] for o in sb.truth("charges")}  # unix times (records carry RFC 3339)
        final_created = sorted(created_at[i] for i in ids)
        written: list[int] = []
        for message in run.messages:
            if message["type"] == "RECORD":
                written.append(created_at[message["record"]["id"]])
            elif message["type"] == "STATE":
                bookmark = message["value"]["bookmarks"].get("charges", {}).get("accounts", {}) \
                    .get("default", {}).get("created")
                if bookmark is not None:
                    behind = [c for c in final_created if c < bookmark]
                    assert sorted(c for c in written if c < bookmark) == behind, "a STATE passed an unwritten record"
        paged, started = set(), set()  # windows (gte, lt) read past their first page / started
        for request in sb.requests:
            if request["path"] == "/v1/charges":
                query = dict(part.split("=", 1) for part in request["query"].split("&"))
                window = (int(query["created%5Bgte%5D"]), int(query["created%5Blt%5D"]))
                (paged if "starting_after" in query else started).add(window)
        # A window split on its first page is never paged; a shared one was paged, then its
        # older part started as a window of its own with the same lower bound.
        shared = [(lo, hi) for lo, hi in paged for lo2, hi2 in started if lo2 == lo and hi2 < hi]
        assert shared, "no running window was shared with an idle worker"
        assert run.last_state["bookmarks"]["charges"]["accounts"]["default"]["created"] == sb.now


def test_worker_shares_give_the_largest_streams_their_whole_endpoint_rate():
    from tap_stripe.engine.scheduler import worker_shares

    shares = worker_shares({"charges": 2000, "balance": 2000, "intents": 1000, "customers": 500},
                           endpoint_rate=25, global_rate=100, latency=0.25, limit=36)
    assert shares["charges"] == shares["balance"] > 25 * 0.25  # more in flight than 25/s needs
    assert shares["customers"] < shares["intents"] < shares["charges"]  # the others pace to finish with them
    assert sum(shares.values()) <= 36
    few = worker_shares({"charges": 2000, "customers": 500}, endpoint_rate=25, global_rate=100, latency=0.25,
                        limit=4)
    assert sum(few.values()) <= 4 and min(few.values()) >= 1


def test_a_task_ending_wakes_the_main_loop_and_is_counted_out():
    """The main loop sleeps on one future (`Paging.wake`), not on every running task: each
    task the scheduler submits sets it when it ends, and `running` counts it out."""
    from concurrent.futures import wait
    from types import SimpleNamespace

    from tap_stripe.engine.scheduler import Scheduler

    client = SimpleNamespace(limiter=SimpleNamespace(global_rate=100.0, endpoint_rate=25.0), latency=0.25)
    scheduler = Scheduler(client, 2)
    try:
        release = threading.Event()
        wake = scheduler.paging.renew()
        task = scheduler.submit(release.wait, 30)
        assert scheduler.running == 1 and not wake.done()
        release.set()
        assert task.result(30)
        wait([wake], timeout=30)  # a bound, not a timing: a missed wake-up fails here
        assert wake.done() and scheduler.running == 0
    finally:
        scheduler.executor.shutdown()


def test_requests_in_flight_follow_the_budget_and_the_latency_observed():
    """Little's law: rate × latency (with headroom) in flight, growing and shrinking with the
    latency, never above max_workers when it is set; grown at most twofold a second while
    the process has CPU to spare, held while it is busy, and cut while it is CPU-bound
    (threads would only contend for the interpreter)."""
    from types import SimpleNamespace

    from tap_stripe.engine.scheduler import AUTO_MAX_WORKERS, HEADROOM, START_IN_FLIGHT, Scheduler

    clock = SimpleNamespace(wall=0.0, cpu=0.0)

    def tick(seconds=1.0, busy=0.2):
        clock.wall += seconds
        clock.cpu += seconds * busy

    client = SimpleNamespace(limiter=SimpleNamespace(global_rate=100.0, endpoint_rate=25.0), latency=0.25)
    scheduler = Scheduler(client, None, clock=lambda: clock.wall, cpu_clock=lambda: clock.cpu)
    try:
        assert scheduler.in_flight_limit() == START_IN_FLIGHT  # needs 40, starts at 4
        tick()
        assert scheduler.in_flight_limit() == 2 * START_IN_FLIGHT
        tick(0.25)
        assert scheduler.in_flight_limit() == 2 * START_IN_FLIGHT  # not twice in one measure
        tick()
        assert scheduler.in_flight_limit() == 4 * START_IN_FLIGHT
        for _ in range(2):
            tick()
            scheduler.in_flight_limit()
        assert scheduler.in_flight_limit() == math.ceil(100 * 0.25 * HEADROOM) + 2  # 40: what the rate needs
        client.latency = 1.0
        tick(busy=0.8)  # busy (not yet CPU-bound): held
        assert scheduler.in_flight_limit() == 40
        tick()
        assert scheduler.in_flight_limit() == 80
        tick()
        assert scheduler.in_flight_limit() == math.ceil(100 * 1.0 * HEADROOM) + 2  # 152
        client.latency = 0.001
        assert scheduler.in_flight_limit() == math.ceil(100 * 0.01 * HEADROOM) + 2  # latency floored at 10 ms
        client.latency = 100.0
        for _ in range(6):
            tick()
            scheduler.in_flight_limit()
        assert scheduler.in_flight_limit() == AUTO_MAX_WORKERS
        tick(busy=0.95)  # CPU-bound: a fifth less each second, never below the start
        assert scheduler.in_flight_limit() == int(AUTO_MAX_WORKERS * 0.8)
        for _ in range(30):
            tick(busy=0.95)
            scheduler.in_flight_limit()
        assert scheduler.in_flight_limit() == START_IN_FLIGHT
    finally:
        scheduler.executor.shutdown()
    bounded = Scheduler(SimpleNamespace(limiter=client.limiter, latency=1.0), 16,
                        clock=lambda: clock.wall, cpu_clock=lambda: clock.cpu)
    try:
        for _ in range(4):
            tick()
            bounded.in_flight_limit()
        assert bounded.in_flight_limit() == 16
    finally:
        bounded.executor.shutdown()
