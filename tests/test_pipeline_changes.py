"""One named test per way a change between runs of a pipeline lost data or went wrong: the
selection changed, a permission came and went, `end_date` bounded a full re-read, several
accounts read full-table streams, a first load was killed again and again, and the key's own
account was left unnamed. Each builds the history over real HTTP against the sandbox with the
tap's command line, then checks what a target holds against the sandbox's truth (gaps between
runs are longer than the 300 s lookback)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import pytest
import requests
from conftest import (
    ROOT,
    SANDBOX_KEY,
    SANDBOX_NOW,
    TargetModel,
    assert_matches,
    catalog_for,
    tap_config,
)

DAY = 86400


def cursors(state: dict) -> dict[tuple[str, str, str], int]:
    """(stream, account, key) -> the `created` and `events` bookmarks of a STATE."""
    out = {}
    for stream, bookmark in (state or {}).get("bookmarks", {}).items():
        for account, values in (bookmark.get("accounts") or {}).items():
            for key in ("created", "events"):
                if isinstance(values.get(key), int):
                    out[(stream, account, key)] = values[key]
    return out


def bookmark(state: dict, stream: str, key: str, account: str = "default"):
    return ((state or {}).get("bookmarks", {}).get(stream, {}).get("accounts", {}).get(account) or {}).get(key)


def rfc3339(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def oldest(sandbox, stream: str, skip: int = 0) -> dict:
    """An object created long before any run: a change to it is read through events only."""
    return sorted(sandbox.truth(stream), key=lambda o: o["created"])[skip]


# ----- 1. a child deselected for a run ---------------------------------------------------------

def test_a_child_deselected_for_one_run_gets_the_changes_made_meanwhile(sandbox, run_tap):
    """Guarantee: deselecting a child stream for some runs loses nothing; once it is selected
    again, a tax id added meanwhile to an old customer reaches the target (the runs without it
    must not consume the child's own events for good)."""
    config = tap_config(sandbox, full_resync_streams=[])
    both = catalog_for(["customers", "customer_tax_ids"])
    first = run_tap(config, catalog=both)
    assert first.returncode == 0, first.stderr
    customer = oldest(sandbox, "customers")
    sandbox.advance(DAY)
    added = sandbox.create("customer_tax_ids", parent=customer["id"])
    sandbox.advance(DAY)  # longer than the lookback: the next run's events begin after the change
    second = run_tap(config, catalog=catalog_for(["customers"]), state=first.last_state)
    assert second.returncode == 0, second.stderr
    sandbox.advance(DAY)
    third = run_tap(config, catalog=both, state=second.last_state)
    assert third.returncode == 0, third.stderr
    model = TargetModel().apply(first.messages).apply(second.messages).apply(third.messages)
    assert added["id"] in model.rows("customer_tax_ids"), "the tax id added while the child was deselected"
    assert_matches(model, sandbox, ["customers", "customer_tax_ids"])


# ----- 2. a parent deselected for a run, its child still selected --------------------------------

def test_a_parent_deselected_for_one_run_gets_the_changes_made_meanwhile(sandbox, run_tap):
    """Guarantee: deselecting a parent (`customers`) for some runs while its child
    (`customer_tax_ids`) stays selected loses nothing; once the parent is selected again, an
    old customer's email changed meanwhile is the target's."""
    config = tap_config(sandbox, full_resync_streams=[])
    both = catalog_for(["customers", "customer_tax_ids"])
    first = run_tap(config, catalog=both)
    assert first.returncode == 0, first.stderr
    customer = oldest(sandbox, "customers")
    sandbox.advance(DAY)
    sandbox.update("customers", customer["id"], {"email": "while-deselected@example.com"})
    sandbox.advance(DAY)  # longer than the lookback: the next run's events begin after the change
    second = run_tap(config, catalog=catalog_for(["customer_tax_ids"]), state=first.last_state)
    assert second.returncode == 0, second.stderr
    sandbox.advance(DAY)
    third = run_tap(config, catalog=both, state=second.last_state)
    assert third.returncode == 0, third.stderr
    model = TargetModel().apply(first.messages).apply(second.messages).apply(third.messages)
    assert model.rows("customers")[customer["id"]]["email"] == "while-deselected@example.com"
    assert_matches(model, sandbox, ["customers", "customer_tax_ids"])


# ----- 3. a permission removed for a run, then restored -----------------------------------------

def test_a_child_list_refused_for_one_run_is_read_once_the_permission_returns(sandbox, run_tap):
    """Guarantee: a child list answering 403 for a run (a permission removed, then restored)
    does not move its events bookmark in that run (its `created` bookmark may pass windows with
    no parent in them, which hold none of its records), and a balance transaction added
    meanwhile to an old customer reaches the target in the run after the permission returns."""
    streams = ["customers", "customer_balance_transactions"]
    config = tap_config(sandbox, full_resync_streams=[])
    catalog = catalog_for(streams)
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    customer = oldest(sandbox, "customers")
    sandbox.advance(DAY)
    added = sandbox.create("customer_balance_transactions", {"amount": -500, "currency": "usd"},
                           parent=customer["id"])
    sandbox.advance(DAY)  # longer than the lookback: the next run's events begin after the change
    sandbox.add_fault("/v1/customers/*/balance_transactions", "403", permission="rak_customer_read")
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert "Skipping stream customer_balance_transactions" in second.stderr
    before = bookmark(first.last_state, "customer_balance_transactions", "events")
    for state in second.states():
        moved = bookmark(state, "customer_balance_transactions", "events")
        assert moved == before, f"the refused child's events bookmark moved from {before} to {moved}"
    sandbox.clear_faults()  # the permission is back
    sandbox.advance(DAY)
    third = run_tap(config, catalog=catalog, state=second.last_state)
    assert third.returncode == 0, third.stderr
    model = TargetModel().apply(first.messages).apply(second.messages).apply(third.messages)
    assert added["id"] in model.rows("customer_balance_transactions"), "the balance transaction added during the 403"
    assert_matches(model, sandbox, streams)


# ----- 4. a full re-read bounded by end_date ---------------------------------------------------

def _no_activation_no_regression(before: dict, run) -> None:
    activations = [m for m in run.messages if m["type"] == "ACTIVATE_VERSION"]
    assert activations == [], "a re-read bounded by end_date sent ACTIVATE_VERSION: targets drop the rows after it"
    start = cursors(before)
    for state in run.states():
        for key, value in cursors(state).items():
            if key in start:
                assert value >= start[key], f"bookmark {key} moved backwards from {start[key]} to {value}"


def test_a_full_resync_bounded_by_end_date_keeps_every_row(sandbox, run_tap):
    """Guarantee: a full resync (customers, the default) run with `end_date` in the middle of
    the history sends no ACTIVATE_VERSION (it read only up to end_date), the target keeps every
    live row, and no bookmark moves backwards."""
    catalog = catalog_for(["customers"])
    first = run_tap(tap_config(sandbox), catalog=catalog)
    assert first.returncode == 0, first.stderr
    sandbox.advance(DAY)
    bounded = run_tap(tap_config(sandbox, end_date=rfc3339(SANDBOX_NOW - 100 * DAY)), catalog=catalog,
                      state=first.last_state)
    assert bounded.returncode == 0, bounded.stderr
    _no_activation_no_regression(first.last_state, bounded)
    model = TargetModel().apply(first.messages).apply(bounded.messages)
    assert_matches(model, sandbox, ["customers"])


def test_the_30_day_re_read_bounded_by_end_date_keeps_every_row(sandbox, run_tap):
    """Guarantee: the full re-read that follows an events bookmark older than Stripe's 30 days
    (charges), run with `end_date` 100 days back, sends no ACTIVATE_VERSION, the target keeps
    every live row, and no bookmark moves backwards."""
    catalog = catalog_for(["charges"])
    first = run_tap(tap_config(sandbox), catalog=catalog)
    assert first.returncode == 0, first.stderr
    sandbox.advance(40 * DAY)  # the events bookmark is older than Stripe keeps events
    bounded = run_tap(tap_config(sandbox, end_date=rfc3339(sandbox.now - 100 * DAY)), catalog=catalog,
                      state=first.last_state)
    assert bounded.returncode == 0, bounded.stderr
    _no_activation_no_regression(first.last_state, bounded)
    model = TargetModel().apply(first.messages).apply(bounded.messages)
    assert_matches(model, sandbox, ["charges"])


# ----- 5. deletions in full-table streams with several accounts ----------------------------------

def _deleted_in_one_of_two_accounts(run_tap, stream: str) -> None:
    from stripe_sandbox import Sandbox

    with Sandbox(seed=5, scale=0.05, now=SANDBOX_NOW, accounts=2, history_days=100) as sandbox:
        accounts = sandbox.account_ids()
        config = tap_config(sandbox, account_ids=accounts)
        catalog = catalog_for([stream], config)
        sandbox.create(stream, account=accounts[1])  # one stays, one goes
        first = run_tap(config, catalog=catalog)
        assert first.returncode == 0, first.stderr
        gone = sandbox.truth(stream, accounts[1])[-1]
        assert (accounts[1], gone["id"]) in TargetModel().apply(first.messages).tables[stream]
        sandbox.advance(DAY)
        sandbox.delete(stream, gone["id"], account=accounts[1])
        sandbox.advance(DAY)  # longer than the lookback: the next run's events begin after the change
        second = run_tap(config, catalog=catalog, state=first.last_state)
        assert second.returncode == 0, second.stderr
        deletions = [r for r in second.records(stream) if r["id"] == gone["id"] and r.get("deleted") is True]
        assert deletions, f"no deletion record of {stream} {gone['id']} (account {accounts[1]})"
        model = TargetModel().apply(first.messages).apply(second.messages)
        assert (accounts[1], gone["id"]) not in model.tables[stream]
        for account in accounts:
            assert_matches(model, sandbox, [stream], account)


def test_a_deletion_in_a_full_table_stream_reaches_the_target_with_several_accounts(run_tap):
    """Guarantee: with several accounts (no ACTIVATE_VERSION), an object deleted in a
    full-table stream whose deletions Stripe announces (`test_helpers.test_clock.deleted`)
    arrives in the target as a deletion record: such a table is read by its events between
    its periodic full reads."""
    _deleted_in_one_of_two_accounts(run_tap, "test_clocks")


@pytest.mark.parametrize("stream", ["tax_ids", "webhook_endpoints", "terminal_locations"])
def test_a_full_table_stripe_sends_no_deletion_event_of_is_a_documented_limit(run_tap, stream):
    """Known limit: Stripe sends no event when an account's tax id, a webhook endpoint or a
    terminal location is deleted (`customer.tax_id.deleted` is for customers' tax ids), so with
    several accounts, where no ACTIVATE_VERSION can be sent, the deleted row stays in the
    target. The README's limits name each such stream."""
    with pytest.raises(AssertionError, match="no deletion record"):
        _deleted_in_one_of_two_accounts(run_tap, stream)
    limits = (ROOT / "README.md").read_text()
    section = limits[limits.index("<!-- BEGIN deletions-without-events -->"):
                     limits.index("<!-- END deletions-without-events -->")]
    assert f"`{stream}`" in section


# ----- 6. a first load killed again and again makes progress ------------------------------------

def run_killed(tmp_path, config: dict, catalog: dict, state: dict | None, kill_after: int, sig: int):
    """One tap run, sent `sig` once it has written `kill_after` records (counted on its stdout,
    a pipe of one page, so the tap is at most a page ahead). Returns (messages, exit code);
    a line the kill cut is dropped, as a target would never see it."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    argv = [sys.executable, "-m", "tap_stripe", "--config", str(tmp_path / "config.json"),
            "--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        argv += ["--state", str(tmp_path / "state.json")]
    read_fd, write_fd = os.pipe()
    with suppress(AttributeError, OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    with open(tmp_path / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen(argv, stdout=write_fd, stderr=stderr, stdin=subprocess.DEVNULL, cwd=tmp_path)
    os.close(write_fd)
    messages, records, sent = [], 0, False
    with open(read_fd, "rb") as out:
        for line in out:
            if not line.endswith(b"\n"):
                break
            messages.append(json.loads(line))
            if messages[-1]["type"] == "RECORD":
                records += 1
                if records >= kill_after and not sent:
                    os.kill(proc.pid, sig)
                    sent = True
    return messages, proc.wait(timeout=300)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_first_load_killed_again_and_again_makes_progress(tmp_path, run_tap, sig):
    """Guarantee: a first load killed every K records (SIGTERM or SIGKILL), each run resumed
    from the last STATE the target received, finishes within (records of an uninterrupted run
    / K) + 1 runs and writes at most 1.5 times the records of an uninterrupted run."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=11, scale=0.02, now=SANDBOX_NOW, history_days=200, volumes={"charges": 5000}) as sandbox:
        config = tap_config(sandbox, max_workers=4)
        catalog = catalog_for(["charges"])
        clean = run_tap(config, catalog=catalog)
        assert clean.returncode == 0, clean.stderr
        needed = len(clean.records("charges"))
        assert needed >= 4000
        kill_after = needed // 5
        allowed_runs = needed // kill_after + 1
        model, state, written, runs = TargetModel(), None, 0, 0
        while runs < 3 * allowed_runs:
            runs += 1
            messages, code = run_killed(tmp_path, config, catalog, state, kill_after, sig)
            model.apply(messages)
            written += sum(1 for m in messages if m["type"] == "RECORD")
            states = [m["value"] for m in messages if m["type"] == "STATE"]
            state = states[-1] if states else state
            if code == 0:
                break
        assert code == 0, f"still not finished after {runs} runs"
        assert runs <= allowed_runs, f"{runs} runs for {needed} records killed every {kill_after}: " \
                                     f"at most {allowed_runs} expected ({written} records written)"
        assert written <= 1.5 * needed, f"{written} records written for {needed} ({written / needed:.2f}x)"
        assert_matches(model, sandbox, ["charges"])


# ----- 7. the key's own account is named ---------------------------------------------------------

def test_the_keys_own_account_is_named_in_account_id(sandbox, run_tap):
    """Guarantee: `_account_id` is the id of the account read, also for the key's own account
    (`GET /v1/account`), so two keys loading into one schema keep their rows apart: never null."""
    own = requests.get(sandbox.url + "/v1/account", headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
                       timeout=10).json()["id"]
    assert own.startswith("acct_")
    result = run_tap(tap_config(sandbox), catalog=catalog_for(["customers", "customer_tax_ids", "charges"]))
    assert result.returncode == 0, result.stderr
    assert result.records()
    assert {r.get("_account_id") for r in result.records()} == {own}


def test_a_full_table_read_killed_part_way_goes_on_from_its_last_written_page(tmp_path, run_tap):
    """Guarantee: a full table's read (a table version) killed part-way is resumed in the same
    version from the page after the last one its STATE covers, so its next run does not read the
    pages already written again, and the version's ACTIVATE_VERSION still keeps every row."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=12, scale=0.02, now=SANDBOX_NOW, volumes={"tax_ids": 2000}) as sandbox:
        config = tap_config(sandbox, max_workers=2)
        catalog = catalog_for(["tax_ids"])
        needed = len(sandbox.truth("tax_ids"))
        assert needed >= 1500
        first, code = run_killed(tmp_path, config, catalog, None, needed // 2, signal.SIGKILL)
        assert code != 0
        state = [m["value"] for m in first if m["type"] == "STATE"][-1]
        progress = bookmark(state, "tax_ids", "table")
        assert progress and progress["cursor"].startswith("txi_"), state
        written = sum(1 for m in first if m["type"] == "RECORD")
        second = run_tap(config, catalog=catalog, state=state)
        assert second.returncode == 0, second.stderr
        again = len(second.records("tax_ids"))
        assert again <= needed - written + 200, f"{again} records read again after {written} of {needed}"
        versions = {m.get("version") for m in first + second.messages if m["type"] == "RECORD"}
        assert versions == {progress["version"]}
        model = TargetModel().apply(first).apply(second.messages)
        assert_matches(model, sandbox, ["tax_ids"])
        assert bookmark(second.last_state, "tax_ids", "table") is None
