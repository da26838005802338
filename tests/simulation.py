"""Simulation testing of the tap, the way FoundationDB and Jepsen test databases.

A *history* is a seeded, random sequence of steps against a fresh sandbox: creates, updates,
deletes and child changes in several accounts (windowed, full-resync, full-table and child
streams), clock jumps of a second up to 40 days, faults for the next run (5xx, 429, resets, cut
bodies, 400, a 403 or "not set up" on a list), pipeline changes between runs (streams
deselected and selected again: a parent, a child, a family; a permission removed for a run or
more, then restored: a 403 on any list), settings a user may switch between runs
(full_resync_streams, end_date, accounts added, shards with a process and a state each; and
per history the reconciliation interval `full_resync_every_days`), tap
runs killed with SIGKILL or SIGTERM at a line drawn from the lines a clean run of the same
state writes, and first loads killed again and again every K records (`KillLoop`: the runs
and records it took are the Outcome's `progress`). Every run's output goes into `Target`, a
model of target-postgres; every run resumes from the last complete STATE line the target
received. After the history one last clean run (faults cleared, permissions restored, every
stream selected, no kill, no end_date) must leave the target equal to the sandbox's truth for
every stream and account:

- every live object present at its newest version (conftest.expected_rows / comparable),
- no deleted object (nor a child of a deleted parent), nothing created before start_date,

except for exactly one documented limit (`Simulation._note_expired_deletions`). While the
history runs every STATE is checked as well (`StateChecker`): a bookmark never moves past a
record not yet written, no bookmark the run started with disappears or goes back, and no run
removes the row of an object still live (`live-row-dropped`). Output lines that
are not JSON (a cut line) are mismatches too, unless the run was SIGKILLed and it is the last.

Histories come from `generate(seed)` (scripts/soak.py) or from the hypothesis strategy
`histories()` (tests/test_simulation.py). A failing history is shrunk (`shrink`, `Memo`) and
reported with its seed, its steps, what each run did and a command replaying it exactly
(`History.to_json()` / `scripts/soak.py --replay`).

Tap runs are real processes running `tap-stripe`'s command line with a catalog of the selected
streams, stdout on a pipe shrunk to one page (a kill lands near the line that triggered it; a
slow target is simulated for free). By default they are forked from a *zygote* process that
imported the tap once (0.7 s less per run); SIM_FORK=0 starts each with `python -m tap_stripe`.
"""

from __future__ import annotations

import copy
import fcntl
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DAY = 86400
SANDBOX_NOW = 1767225600  # conftest.SANDBOX_NOW (not imported: the zygote stays light)
SANDBOX_KEY = "sk_test_sandbox"
EVENT_RETENTION = 30 * DAY  # Stripe keeps events 30 days (the sandbox keeps them as long)
LOOKBACK = 300  # the tap's default lookback_seconds, which the simulated user keeps
HISTORY_DAYS = 90
MAX_ACCOUNTS = 3
KILL_PROGRESS_RECORDS = 1000  # KillLoop: SIGKILLs at least this many records apart must make progress
HUNG_SECONDS = 300  # a tap run still going after this long is killed and reported (a safety net)

# What the simulated user selects: a modest set with every mechanism in it (windows, events,
# deletions, full resync, children embedded and fetched, an immutable stream).
# Full-table streams (lists without `created`, read whole each run): test clocks, whose deletions
# Stripe announces (`test_helpers.test_clock.deleted`); tax ids, announced as
# `customer.tax_id.deleted`; webhook endpoints, of which Stripe sends no event at all.
FULL_TABLE = ("test_clocks", "tax_ids", "webhook_endpoints")
STREAMS = ("charges", "customers", "customer_tax_ids", "invoices", "invoice_line_items", "subscriptions",
           "subscription_items", "products", "prices", "coupons", "refunds", "balance_transactions", *FULL_TABLE)
CHILDREN = {"customer_tax_ids": "customers", "invoice_line_items": "invoices", "subscription_items": "subscriptions"}
TOP_LEVEL = tuple(s for s in STREAMS if s not in CHILDREN)
VOLUMES = {"charges": 14, "customers": 6, "invoices": 7, "subscriptions": 4, "products": 4, "prices": 5,
           "coupons": 3, "refunds": 4, "balance_transactions": 14, "events": 20, "invoice_items": 6,
           "payment_intents": 8, "plans": 3, "test_clocks": 3, "tax_ids": 3, "webhook_endpoints": 3}

# Changes the sandbox can make, per kind (Stripe's own rules: charges and refunds are never
# deleted, a subscription's deletion is its cancellation, balance transactions never change).
# Test clocks and tax ids have no metadata and never change (Stripe updates neither that way).
CREATABLE = ("customers", "products", "prices", "coupons", "invoices", "subscriptions", "charges", "refunds",
             "balance_transactions", *FULL_TABLE)
UPDATABLE = ("customers", "products", "prices", "coupons", "invoices", "subscriptions", "charges", "refunds",
             "webhook_endpoints")
DELETABLE = ("customers", "products", "prices", "coupons", "invoices", "subscriptions", *FULL_TABLE)
CHILD_CREATABLE = ("invoice_line_items", "subscription_items", "customer_tax_ids")
CHILD_UPDATABLE = ("invoice_line_items", "subscription_items")
CHILD_DELETABLE = ("invoice_line_items", "subscription_items", "customer_tax_ids")
# Children without events of their own, and the parent field that embeds their first page.
EMBEDDED_IN = {"invoice_line_items": "lines", "subscription_items": "items"}

RETRYABLE_FAULTS = ("500", "503", "429", "reset", "truncated")
FATAL_FAULTS = ("400",)
PERMISSION_FAULTS = ("403", "not_setup")
FAULT_PATHS = ("/v1/*", "/v1/events", "/v1/customers*", "/v1/invoices*", "/v1/charges*", "/v1/subscriptions*",
               "/v1/products*")
# Child lists (a 403 there is a permission the key lacks) and one top-level list.
PERMISSION_PATHS = ("/v1/customers/*/tax_ids", "/v1/invoices/*/lines", "/v1/subscription_items", "/v1/refunds")
# A 403 for the next run(s): a permission removed from the key, then restored. Any list, child
# lists included (a prefix covers what is under it: /v1/customers is the whole customer family).
REVOKE_PATHS = ("/v1/customers/*/tax_ids", "/v1/invoices/*/lines", "/v1/subscription_items", "/v1/refunds",
                "/v1/charges", "/v1/customers", "/v1/invoices", "/v1/subscriptions", "/v1/products", "/v1/prices",
                "/v1/coupons", "/v1/balance_transactions", "/v1/test_helpers/test_clocks", "/v1/tax_ids",
                "/v1/webhook_endpoints")
# Streams deselected between runs (the rest stay selected): a parent alone (its child still
# selected), a child alone, a whole family, a top-level stream, a full-table stream.
SELECTION_CHOICES: tuple[tuple[str, ...], ...] = (
    ("customers",), ("invoices",), ("subscriptions",), ("customer_tax_ids",), ("invoice_line_items",),
    ("subscription_items",), ("customers", "customer_tax_ids"), ("invoices", "invoice_line_items"),
    ("subscriptions", "subscription_items"), ("charges", "refunds"), ("products", "prices"), ("tax_ids",),
    ("test_clocks", "webhook_endpoints"), ("customer_tax_ids", "invoice_line_items", "coupons"))
RESYNC_CHOICES: tuple[tuple[str, ...], ...] = ((), ("customers", "invoices"), ("customers",), ("invoices", "products"))
DEFAULT_RESYNC = ("customers", "invoices")  # tap_stripe.settings.DEFAULT_FULL_RESYNC


# ---------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class Create:
    stream: str
    account: int = 0  # 0..2: the history's 1st..3rd account (the platform in platform mode)
    late: int = 0  # created this many seconds before the clock (late visibility, within lookback)

    def __str__(self):
        return f"create a {self.stream[:-1]} in {_acct(self.account)}" + (f", {self.late}s late" if self.late else "")


@dataclass(frozen=True)
class Update:
    stream: str
    account: int = 0
    pick: int = 0  # which live object (modulo their number)

    def __str__(self):
        return f"update {self.stream} #{self.pick} of {_acct(self.account)}"


@dataclass(frozen=True)
class Delete:
    stream: str
    account: int = 0
    pick: int = 0

    def __str__(self):
        return f"delete {self.stream} #{self.pick} of {_acct(self.account)}" + (
            " (cancel)" if self.stream == "subscriptions" else "")


@dataclass(frozen=True)
class ChildCreate:
    stream: str
    account: int = 0
    pick: int = 0  # which live parent

    def __str__(self):
        return f"add a {self.stream[:-1]} to {CHILDREN[self.stream]} #{self.pick} of {_acct(self.account)}"


@dataclass(frozen=True)
class ChildUpdate:
    stream: str
    account: int = 0
    pick: int = 0

    def __str__(self):
        return f"update {self.stream} #{self.pick} of {_acct(self.account)}"


@dataclass(frozen=True)
class ChildDelete:
    stream: str
    account: int = 0
    pick: int = 0

    def __str__(self):
        return f"delete {self.stream} #{self.pick} of {_acct(self.account)}"


@dataclass(frozen=True)
class Advance:
    seconds: int

    def __str__(self):
        return f"clock +{_duration(self.seconds)}"


@dataclass(frozen=True)
class Fault:
    """A fault rule for the next run only (cleared after it)."""

    kind: str
    path: str
    count: int | None = None  # fire this many times (after `skip`); None: every matching request
    skip: int = 0

    def __str__(self):
        times = "every request" if self.count is None else f"{self.count}x after {self.skip}"
        return f"fault {self.kind} on {self.path} ({times}) for the next run"


@dataclass(frozen=True)
class Latency:
    ms: int

    def __str__(self):
        return f"sandbox latency {self.ms} ms"


@dataclass(frozen=True)
class SetResync:
    streams: tuple[str, ...]

    def __str__(self):
        return f"set full_resync_streams={list(self.streams)}"


@dataclass(frozen=True)
class SetEndDate:
    days_ago: int | None  # None: remove end_date

    def __str__(self):
        return "remove end_date" if self.days_ago is None else f"set end_date = clock - {self.days_ago} days"


@dataclass(frozen=True)
class AddAccount:
    def __str__(self):
        return "add the next connected account to account_ids"


@dataclass(frozen=True)
class Shard:
    n: int

    def __str__(self):
        return f"switch to {self.n} shard processes (account_shard i/{self.n}), each with a copy of the state"


@dataclass(frozen=True)
class Run:
    kill: str | None = None  # None, "KILL" or "TERM"
    at: int = 500  # kill point, per mille of the lines a clean run of the same state writes
    shard: int = 0  # which shard process is killed

    def __str__(self):
        if not self.kill:
            return "run the tap"
        return f"run the tap, SIG{self.kill} at {self.at / 10:.1f}% of its output" + (
            f" (sharded: process {self.shard} mod N)" if self.shard else "")


@dataclass(frozen=True)
class Select:
    """The streams deselected from the next run on (the catalog selects the others); () selects
    every stream again."""

    off: tuple[str, ...] = ()

    def __str__(self):
        return f"deselect {', '.join(self.off)}" if self.off else "select every stream again"


@dataclass(frozen=True)
class Revoke:
    """A permission removed from the key for the next `runs` runs, then restored: every request
    under `path` answers 403."""

    path: str
    runs: int = 1

    def __str__(self):
        return f"revoke the permission of {self.path} (403) for the next {self.runs} run(s)"


@dataclass(frozen=True)
class KillLoop:
    """Runs killed again and again until one ends: each is sent SIG`kill` once it has written
    `every` per mille of the records an uninterrupted run of the first state writes (a first
    load that never gets a quiet moment). Progress is measured: the runs needed and the records
    written, against (records needed / K) + 1 runs and 1.5x the records."""

    kill: str = "TERM"
    every: int = 200

    def __str__(self):
        return f"run the tap again and again, SIG{self.kill} after each {self.every / 10:.0f}% of the records"


STEP_TYPES = {cls.__name__: cls for cls in (Create, Update, Delete, ChildCreate, ChildUpdate, ChildDelete, Advance,
                                            Fault, Latency, SetResync, SetEndDate, AddAccount, Shard, Run, Select,
                                            Revoke, KillLoop)}
Step = Any


def _acct(index: int) -> str:
    return f"account {index + 1}"


def _duration(seconds: int) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds} s"


@dataclass(frozen=True)
class History:
    seed: int  # the sandbox's seed (its generated data)
    mode: str = "platform"  # "platform": the key's own account; "connected": account_ids
    accounts: int = 1  # connected mode: account_ids at the start (1 or 2)
    start_days: int = 60  # start_date = SANDBOX_NOW - start_days (the data spans 90 days)
    workers: int = 4  # max_workers
    resync_every: int = 7  # full_resync_every_days: how often full re-reads reconcile (0: every run)
    steps: tuple = ()

    def describe(self) -> str:
        accounts = f" with {self.accounts} account(s)" if self.mode == "connected" else ""
        every = "" if self.resync_every == 7 else f", full_resync_every_days={self.resync_every}"
        head = (f"History(seed={self.seed}, {self.mode}{accounts}, start_date=now-{self.start_days}d, "
                f"max_workers={self.workers}{every}), {len(self.steps)} steps:")
        lines = [head] + [f"  {i + 1:2d}. {step}" for i, step in enumerate(self.steps)]
        lines.append(f"  {len(self.steps) + 1:2d}. (final) clear faults, restore permissions, select every stream, "
                     "remove end_date, clock +1 s, clean run, compare")
        return "\n".join(lines)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if k != "steps"}
        data["steps"] = [[type(s).__name__, {f.name: getattr(s, f.name) for f in fields(s)}] for s in self.steps]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> History:
        data = json.loads(text)
        steps = []
        for name, args in data.pop("steps"):
            steps.append(STEP_TYPES[name](**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}))
        return cls(**data, steps=tuple(steps))

    def __repr__(self):
        return self.describe() + "\nreplay: python scripts/soak.py --replay '" + self.to_json() + "'"


# ---------------------------------------------------------------------------------------------- generation
def generate(seed: int, max_steps: int = 22) -> History:
    """A random history from `seed` (scripts/soak.py), drawn much like `histories()` draws one."""
    rng = random.Random(seed)
    mode = rng.choice(("platform", "connected"))
    steps: list = []
    if rng.random() < 0.4:
        steps.append(SetResync(rng.choice(RESYNC_CHOICES)))  # the user's setting from the start
    if rng.random() < 0.8:  # most pipelines start with a first load; some are killed again and again
        steps.append(Run() if rng.random() < 0.85
                     else KillLoop(rng.choice(("TERM", "KILL")), rng.choice((100, 200, 300))))
    for _ in range(rng.randint(4, max_steps)):
        steps.append(_random_step(rng, mode))
    # Drawn apart, so each seed's other draws stay what they were.
    every = random.Random(seed ^ 0x5EC0).choice((7, 7, 1, 0))
    return History(seed=seed, mode=mode, accounts=rng.choice((1, 2)), start_days=rng.choice((40, 60, 80)),
                   workers=rng.choice((1, 4, 16)), resync_every=every, steps=tuple(steps))


def _random_step(rng: random.Random, mode: str):
    kind = rng.choices(("create", "update", "delete", "child", "advance", "fault", "setting", "run", "select",
                        "revoke"), weights=(10, 14, 8, 8, 16, 9, 9, 22, 9, 6))[0]
    account = rng.randrange(MAX_ACCOUNTS) if mode == "connected" else 0
    pick = rng.randrange(1000)
    if kind == "create":
        return Create(rng.choice(CREATABLE), account, rng.choice((0, 0, 0, rng.randrange(1, LOOKBACK))))
    if kind == "update":
        return Update(rng.choice(UPDATABLE), account, pick)
    if kind == "delete":
        return Delete(rng.choice(DELETABLE), account, pick)
    if kind == "child":
        which = rng.choice(("create", "create", "update", "delete"))
        if which == "create":
            return ChildCreate(rng.choice(CHILD_CREATABLE), account, pick)
        if which == "update":
            return ChildUpdate(rng.choice(CHILD_UPDATABLE), account, pick)
        return ChildDelete(rng.choice(CHILD_DELETABLE), account, pick)
    if kind == "advance":
        # pipelines run hourly or daily more often than within the lookback (300 s)
        bucket = rng.choices(("seconds", "hours", "days", "month"), weights=(2, 4, 3, 1))[0]
        low, high = {"seconds": (1, 600), "hours": (600, DAY), "days": (DAY, 10 * DAY),
                     "month": (25 * DAY, 40 * DAY)}[bucket]
        return Advance(rng.randrange(low, high + 1))
    if kind == "fault":
        family = rng.choices(("retryable", "fatal", "permission"), weights=(5, 1, 4))[0]
        if family == "permission":  # customer tax ids: the child list every changed customer reads
            return Fault(rng.choice(PERMISSION_FAULTS), rng.choice(PERMISSION_PATHS + PERMISSION_PATHS[:1]))
        kinds = RETRYABLE_FAULTS if family == "retryable" else FATAL_FAULTS
        return Fault(rng.choice(kinds), rng.choice(FAULT_PATHS), rng.randint(1, 6), rng.randrange(16))
    if kind == "setting":
        which = rng.choice(("resync", "resync", "end", "end", "account", "shard", "latency"))
        if which == "resync":
            return SetResync(rng.choice(RESYNC_CHOICES))
        if which == "end":  # up to the middle of the history (full resyncs bounded by it)
            return SetEndDate(rng.choice((None, rng.randint(1, 45), rng.randint(1, 80))))
        if which == "account":
            return AddAccount()
        if which == "shard":
            return Shard(rng.choice((2, 3)))
        return Latency(rng.choice((0, 2, 8)))
    if kind == "select":
        return Select(rng.choice(SELECTION_CHOICES) if rng.random() < 0.6 else ())
    if kind == "revoke":
        return Revoke(rng.choice(REVOKE_PATHS), rng.choice((1, 1, 2, 3)))
    killed = rng.random() < 0.5
    return Run(rng.choice(("KILL", "KILL", "TERM")) if killed else None, rng.randint(1, 999), rng.randrange(3))


def histories(max_runs: int = 5, max_between: int = 4):
    """The hypothesis strategy: up to `max_runs` phases of a few steps, each ending in a tap run
    (then the final clean run). Hypothesis shrinks it toward fewer phases and simpler steps."""
    from hypothesis import strategies as st

    accounts = st.integers(0, MAX_ACCOUNTS - 1)
    picks = st.integers(0, 999)
    seconds = st.one_of(st.integers(1, 600), st.integers(600, DAY), st.integers(DAY, 10 * DAY),
                        st.integers(600, DAY), st.integers(25 * DAY, 40 * DAY))
    create = st.builds(Create, st.sampled_from(CREATABLE), accounts, st.sampled_from((0, 0, 1, 120, 299)))
    update = st.builds(Update, st.sampled_from(UPDATABLE), accounts, picks)
    delete = st.builds(Delete, st.sampled_from(DELETABLE), accounts, picks)
    child = st.one_of(st.builds(ChildCreate, st.sampled_from(CHILD_CREATABLE), accounts, picks),
                      st.builds(ChildUpdate, st.sampled_from(CHILD_UPDATABLE), accounts, picks),
                      st.builds(ChildDelete, st.sampled_from(CHILD_DELETABLE), accounts, picks))
    fault = st.one_of(st.builds(Fault, st.sampled_from(RETRYABLE_FAULTS + FATAL_FAULTS), st.sampled_from(FAULT_PATHS),
                                st.integers(1, 6), st.integers(0, 15)),
                      st.builds(Fault, st.sampled_from(PERMISSION_FAULTS), st.sampled_from(PERMISSION_PATHS),
                                st.none(), st.just(0)))
    setting = st.one_of(st.builds(SetResync, st.sampled_from(RESYNC_CHOICES)),
                        st.builds(SetEndDate, st.one_of(st.none(), st.integers(1, 45), st.integers(1, 80))),
                        st.builds(AddAccount), st.builds(Shard, st.sampled_from((2, 3))),
                        st.builds(Latency, st.sampled_from((0, 2, 8))))
    # one_of picks a branch about uniformly: changes and clock jumps are listed more than once
    # pipeline changes: the selection, a permission removed for a run or more
    change = st.one_of(st.builds(Select, st.one_of(st.sampled_from(SELECTION_CHOICES), st.just(()))),
                       st.builds(Revoke, st.sampled_from(REVOKE_PATHS), st.integers(1, 3)))
    between = st.one_of(update, st.builds(Advance, seconds), create, delete, child, update,
                        st.builds(Advance, seconds), fault, setting, setting, change)
    run = st.builds(Run, st.sampled_from((None, "KILL", "TERM")), st.integers(1, 999), st.integers(0, 2))
    # the first load may be killed again and again (KillLoop), a quarter of the time
    first_run = st.one_of(run, run, run, st.builds(KillLoop, st.sampled_from(("TERM", "KILL")),
                                                   st.sampled_from((100, 200, 300))))
    phase = st.tuples(st.lists(between, max_size=max_between), run)
    phases = st.tuples(st.tuples(st.lists(between, max_size=max_between), first_run),
                       st.lists(phase, max_size=max_runs - 1)).map(lambda p: [p[0], *p[1]])
    steps = phases.map(lambda ps: tuple(step for before, run_ in ps for step in (*before, run_)))
    return st.builds(History, seed=st.integers(0, 10_000), mode=st.sampled_from(("platform", "connected")),
                     accounts=st.sampled_from((1, 2)), start_days=st.sampled_from((60, 40, 80)),
                     workers=st.sampled_from((4, 1, 16)), resync_every=st.sampled_from((7, 1, 0)), steps=steps)


# ---------------------------------------------------------------------------------------------- tap processes
@dataclass
class ProcessResult:
    lines: list[bytes]  # complete lines, in order
    partial: bytes  # a last line without its newline (a kill cut it), or b""
    returncode: int  # negative: killed by that signal
    signalled: str | None  # the signal sent, if one was
    stderr: str
    hung: bool = False  # killed after HUNG_SECONDS without ending


class TapRunner:
    """Runs `tap-stripe` processes; reads stdout line by line and kills at a given line."""

    def __init__(self, fork: bool | None = None):
        self.fork = os.environ.get("SIM_FORK", "1") != "0" if fork is None else fork
        self._zygote: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self.processes = 0

    # -- zygote: a process that imported the tap once and forks one child per run
    def _start_zygote(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        boot = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]; import simulation; "
                "simulation._zygote_serve(int(sys.argv[1])); from tap_stripe.tap import cli; cli()")
        self._zygote = subprocess.Popen([sys.executable, "-c", boot, str(child.fileno())], pass_fds=[child.fileno()],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=str(ROOT))
        child.close()
        self._sock = parent

    def _recv(self) -> dict:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise RuntimeError("the simulation's tap zygote died")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        if self._zygote is not None:
            self._sock.close()
            try:
                self._zygote.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self._zygote.pid, signal.SIGKILL)
                self._zygote.wait()
            self._zygote = None

    def run(self, argv: list[str], cwd: Path, kill_at: int | None = None, sig: str = "KILL",
            kill_records: int | None = None) -> ProcessResult:
        """Run the tap; kill it once it has written `kill_at` lines, or `kill_records` records."""
        self.processes += 1
        read_fd, write_fd = os.pipe()
        with suppress(AttributeError, OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)  # the tap is at most a page ahead of the reader
        stderr_path = cwd / "stderr.txt"
        with open(stderr_path, "wb") as stderr_file:
            if self.fork:
                if self._zygote is None or self._zygote.poll() is not None:
                    self._start_zygote()
                request = json.dumps({"argv": ["tap-stripe", *argv], "cwd": str(cwd)}).encode() + b"\n"
                socket.send_fds(self._sock, [request], [write_fd, stderr_file.fileno()])
                pid = self._recv()["pid"]
                proc = None
            else:
                path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
                proc = subprocess.Popen([sys.executable, "-m", "tap_stripe", *argv], stdout=write_fd,
                                        stderr=stderr_file, stdin=subprocess.DEVNULL, cwd=str(cwd),
                                        env={**os.environ, "PYTHONPATH": path})
                pid = proc.pid
        os.close(write_fd)
        lines: list[bytes] = []
        partial = b""
        sent = None
        records = 0
        # A safety net only (nothing is decided by time): a run that never ends is killed.
        hung = threading.Event()

        def stop_hung_run():
            hung.set()
            os.kill(pid, signal.SIGKILL)

        watchdog = threading.Timer(HUNG_SECONDS, stop_hung_run)
        watchdog.start()
        try:
            with open(read_fd, "rb", buffering=4096) as out:
                for line in out:
                    if not line.endswith(b"\n"):
                        partial = line
                        break
                    lines.append(line)
                    if kill_records is not None and line.startswith(b'{"type":"RECORD"'):
                        records += 1
                        if records >= kill_records:
                            kill_at = kill_at or len(lines)
                    if kill_at is not None and sent is None and len(lines) >= kill_at:
                        sent = sig
                        os.kill(pid, signal.SIGKILL if sig == "KILL" else signal.SIGTERM)
            if proc is not None:
                returncode = proc.wait()
            else:
                self._sock.sendall(b'{"wait": true}\n')
                returncode = self._recv()["status"]
        finally:
            watchdog.cancel()
        return ProcessResult(lines, partial, returncode, sent, stderr_path.read_text(errors="replace"), hung.is_set())


def _zygote_serve(fd: int) -> None:
    """The zygote's loop; returns only in a forked child, which then runs the tap's CLI."""
    import tap_stripe.tap  # noqa: F401  (the expensive import, done once)

    sock = socket.socket(fileno=fd)
    buffer = b""
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        if not message:
            os._exit(0)
        buffer += message
        if b"\n" not in buffer:
            continue
        line, buffer = buffer.split(b"\n", 1)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            sock.close()
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            for f in (*fds, null):
                os.close(f)
            os.chdir(request["cwd"])
            sys.argv = request["argv"]
            return
        for f in fds:
            os.close(f)
        sock.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        while b"\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os._exit(0)
            buffer += chunk
        _, buffer = buffer.split(b"\n", 1)  # {"wait": true}: the reader saw the end of the output
        _, status = os.waitpid(pid, 0)
        sock.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


# ---------------------------------------------------------------------------------------------- the target
class Target:
    """What target-postgres (activate_version on) makes of the messages.

    - rows are keyed by (`_account_id`, key properties): the table keeps its rows when a
      change of account settings turns the key from (id) into (_account_id, id);
    - RECORD upserts and stores the message's `version` (NULL without one);
    - `deleted: true` removes the row;
    - ACTIVATE_VERSION v removes the stream's rows whose version is older than v
      (`WHERE _sdc_table_version < v`: rows without a version stay, as in SQL);
    A line that is not JSON never gets here: the simulation reports it as a mismatch (a
    real target would stop at it).
    """

    def __init__(self):
        self.keys: dict[str, list[str]] = {}
        self.tables: dict[str, dict[tuple, tuple[dict, int | None]]] = {}
        self.seen: dict[tuple, set] = {}  # (stream, account, id) -> versions it was ever written with
        # `_account_id` values that name the account kept under another key: the key's own
        # account, as the tap may name it (`GET /v1/account`) or not (null), is one account
        self.aliases: dict[str | None, str | None] = {}

    def apply(self, message: dict) -> None:
        kind, stream = message.get("type"), message.get("stream")
        if kind == "SCHEMA":
            self.keys[stream] = [k for k in message["key_properties"] if k != "_account_id"]
            self.tables.setdefault(stream, {})
        elif kind == "RECORD":
            if stream not in self.keys:
                raise AssertionError(f"RECORD of {stream} before its SCHEMA")
            record = message["record"]
            account = self.aliases.get(record.get("_account_id"), record.get("_account_id"))
            key = (account, *(record.get(k) for k in self.keys[stream]))
            if record.get("deleted") is True:
                self.tables[stream].pop(key, None)
            else:
                version = message.get("version")
                self.tables[stream][key] = (record, version)
                self.seen.setdefault((stream, account, record.get("id")), set()).add(version)
        elif kind == "ACTIVATE_VERSION":
            table = self.tables.get(stream, {})
            for key in [k for k, (_, v) in table.items() if v is not None and v < message["version"]]:
                del table[key]

    def rows(self, stream: str, account: str | None) -> dict[str, dict]:
        return {record["id"]: record for (acct, *_), (record, _) in self.tables.get(stream, {}).items()
                if acct == account}


# ---------------------------------------------------------------------------------------------- outcome
CATEGORIES = (  # in the order a history's failure is named by (hypothesis shrinks per name)
    "state-regressed",     # a STATE lost a bookmark the run started with (e.g. `STATE {}`)
    "malformed-line",      # a complete output line that is not JSON (a cut line)
    "hung",                # a run did not end (killed after HUNG_SECONDS)
    "clean-run-failed",    # a run without fault or kill did not exit 0
    "state-ahead",         # a STATE moved a bookmark past a record not yet written
    "bookmark-backwards",  # a STATE moved a created/events bookmark below where the run began
    "live-row-dropped",    # a run removed the row of an object still live (e.g. ACTIVATE_VERSION)
    "missing",             # a live object is not in the target
    "stale",               # in the target, but not at its newest version
    "before-start",        # created before start_date, yet in the target
    "deleted-kept",        # deleted in Stripe, still in the target
    "deleted-child-kept",  # a child object deleted in Stripe, still in the target
    "orphan-child-kept",   # a child of a deleted parent (gone from Stripe), still in the target
    "stopped-exit-0",      # a run stopped by SIGTERM before its end exited 0
    "no-progress",         # runs killed every K records: more than needed/K + 1 runs, or > 1.5x records
    "unknown-extra",       # in the target, never in Stripe
)


@dataclass
class Finding:
    category: str
    stream: str
    detail: str

    def __str__(self):
        return f"[{self.category}] {self.stream}: {self.detail}"


@dataclass
class Outcome:
    history: History
    findings: list[Finding] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    runs: int = 0  # Run steps (and the final run)
    processes: int = 0  # tap processes (shards, dry counts included)
    kills: int = 0
    changes: int = 0  # creates, updates, deletes and child changes applied
    rows_checked: int = 0
    allowed_extra: int = 0  # rows kept by the documented limits (README, Known limits)
    seconds: float = 0.0
    # KillLoop steps: (records an uninterrupted run writes, records written, runs, K, finished,
    # whether its progress is promised: see Simulation.kill_loop)
    progress: list[tuple[int, int, int, int, bool, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def categories(self) -> list[str]:
        present = {f.category for f in self.findings}
        return [c for c in CATEGORIES if c in present]

    def report(self, limit: int = 25) -> str:
        by_category: dict[str, list[Finding]] = {}
        for finding in self.findings:
            by_category.setdefault(finding.category, []).append(finding)
        lines = [f"simulation seed {self.history.seed}: {len(self.findings)} mismatch(es): "
                 + ", ".join(f"{c} x{len(by_category[c])}" for c in self.categories), "", repr(self.history), "",
                 "what happened:"]
        lines += [f"  {line}" for line in self.log]
        for needed, written, runs, every, finished, _ in self.progress:
            lines.append(f"progress: {runs} runs killed every {every} records wrote {written} records for {needed} "
                         f"({written / max(1, needed):.2f}x){'' if finished else ', never finished'}")
        lines += ["", "mismatches:"]
        shown = 0
        for category in self.categories:
            for finding in by_category[category][:max(3, limit // max(1, len(by_category)))]:
                lines.append(f"  {finding}")
                shown += 1
        if shown < len(self.findings):
            lines.append(f"  … and {len(self.findings) - shown} more")
        return "\n".join(lines)


class SimulationMismatch(AssertionError):
    """A history whose target diverged from the sandbox; one subclass per first category, so
    each kind of failure has its own name (and hypothesis' shrinker, when used, keeps to it)."""


MISMATCH_TYPES = {c: type("Mismatch_" + c.replace("-", "_"), (SimulationMismatch,), {}) for c in CATEGORIES}


# ---------------------------------------------------------------------------------------------- helpers
@lru_cache(maxsize=1)
def deletions_without_events() -> frozenset[str]:
    """The full tables the README names as deleted without an event (Known limits)."""
    text = (ROOT / "README.md").read_text()
    begin, end = "<!-- BEGIN deletions-without-events -->", "<!-- END deletions-without-events -->"
    section = text[text.index(begin):text.index(end)]
    return frozenset(re.findall(r"`(\w+)`", section))


def rfc3339(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@lru_cache(maxsize=64)
def catalog_json(off: tuple[str, ...] = ()) -> str:
    """The catalog of the simulated user's streams alone (a pruned catalog, as many Singer users
    keep one: the same run as the full catalog with only these selected, a second faster), with
    the streams in `off` deselected."""
    from conftest import catalog_for

    catalog = catalog_for([s for s in STREAMS if s not in off])
    return json.dumps({"streams": [e for e in catalog["streams"] if e["tap_stream_id"] in STREAMS]})


def sim_seq(record: dict | None) -> int:
    """The update sequence number a row reflects (`metadata.sim`), -1 if none."""
    metadata = (record or {}).get("metadata") or {}
    try:
        return int(metadata.get("sim", -1))
    except (TypeError, ValueError):
        return -1


@dataclass
class Proc:
    """One tap process of the pipeline (one per shard) and the state its target kept."""

    index: int
    shards: int | None
    state: dict | None = None

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.shards}" if self.shards else "tap"


@dataclass
class Op:
    """One change made to the sandbox, for the STATE checks."""

    kind: str  # create, update, delete, cancel (a subscription's deletion), child (a child changed)
    at: int
    seq: int


# ---------------------------------------------------------------------------------------------- the simulation
class SandboxProbe:
    """What the harness reads from the sandbox beyond its control API (create, update, delete,
    truth, advance, add_fault …): an object's creation time (a deleted one's too), a child's
    parent, and the fault rules set aside for a dry run. The one place that knows the
    sandbox's insides (stripe_sandbox.store); deletions are the harness's own bookkeeping."""

    def __init__(self, sb):
        self.sb = sb

    def _index(self, stream: str, oid: str) -> tuple[Any, int]:
        from stripe_sandbox.ids import parse_id

        st = self.sb.store.streams[stream]
        return st, parse_id(st.prefix, st.salt, oid)[1]

    def created(self, stream: str, account: int, oid: str) -> int:
        st, index = self._index(stream, oid)
        return self.sb.store.created(account, st, index)

    def parent(self, stream: str, account: int, oid: str) -> str:
        from stripe_sandbox.store import SLOT_BITS

        st, index = self._index(stream, oid)
        return self.sb.store.oid(account, st.parent, index >> SLOT_BITS)

    def own_account(self) -> str:
        """The id `GET /v1/account` answers with for the key's own account."""
        return self.sb.store.account_id(0)

    @contextmanager
    def faults_set_aside(self):
        faults = self.sb.app.faults
        rules, faults.rules = faults.rules, []
        try:
            yield
        finally:
            faults.rules = rules


class Simulation:
    def __init__(self, history: History, runner: TapRunner, workdir: Path, target: Target | None = None):
        self.h = history
        self.runner = runner
        self.workdir = workdir
        self.target = target or Target()
        self.outcome = Outcome(history)
        self.sb = None
        self.seq = 0
        self.start = SANDBOX_NOW - history.start_days * DAY
        self.resync: tuple[str, ...] | None = None  # None: the setting is not in the config
        self.end: int | None = None
        self.n_accounts = history.accounts if history.mode == "connected" else 0
        self.procs = [Proc(0, None)]
        self.faults: list[Fault] = []
        self.off: tuple[str, ...] = ()  # streams deselected (Select)
        self.revoked: dict[str, int] = {}  # path -> runs it still answers 403 (Revoke)
        self.ops: dict[tuple, list[Op]] = {}  # (stream, account index, id) -> changes
        self.deletions: list[tuple[str, int, str, int]] = []  # (stream, account index, id, at)
        self.child_added: set[str] = set()  # child ids created by the history (not in the data's own history)
        self.allowed_extra: set[tuple[str, str | None, str]] = set()
        self.last_multi = False
        # (stream, account) -> (clock, change count) of its resync runs: the count says whether a
        # run in the same second as a deletion came after it
        self.resync_runs: dict[tuple[str, int], list[tuple[int, int]]] = {}
        # (stream, account) -> change counts (`seq`) at its resync runs that send ACTIVATE_VERSION
        # (one account): a count, not the clock, says which came first in the same second
        self.activating_resyncs: dict[tuple[str, int], list[int]] = {}
        self.deleted_seq: dict[tuple[str, int, str], int] = {}  # (stream, account index, id) -> seq
        self.resync_began: dict[tuple[str, int, int], int] = {}  # (stream, account, table version) -> seq
        self.deleted_at: dict[tuple[str, int, str], int] = {}  # (stream, account index, id) -> when
        # Children deleted while not on the first page their parent embeds (see `_extra`).
        self.unlisted_child_deletions: set[tuple[str, int, str]] = set()
        self.probe: SandboxProbe | None = None

    # -- accounts
    def sandbox_index(self, account: int) -> int:
        return account + 1 if self.h.mode == "connected" else 0

    def account_id(self, index: int) -> str | None:
        return self.sb.account_ids()[index - 1] if index else None

    def proc_accounts(self, proc: Proc) -> list[int]:
        if self.h.mode == "platform":
            return [0]
        from tap_stripe.api.accounts import shard_of

        indices = list(range(1, self.n_accounts + 1))
        if proc.shards:
            indices = [i for i in indices if shard_of(self.account_id(i), proc.shards) == proc.index]
        return indices

    def config(self, proc: Proc) -> dict:
        from conftest import tap_config

        config = tap_config(self.sb, start_date=rfc3339(self.start), max_retries=3, request_timeout=10,
                            max_workers=self.h.workers)
        if self.resync is not None:
            config["full_resync_streams"] = list(self.resync)
        if self.h.resync_every != 7:
            config["full_resync_every_days"] = self.h.resync_every
        if self.end is not None:
            config["end_date"] = rfc3339(self.end)
        if self.h.mode == "connected":
            config["account_ids"] = self.sb.account_ids()[:self.n_accounts]
            if proc.shards:
                config["account_shard"] = f"{proc.index}/{proc.shards}"
        return config

    def resync_streams(self) -> tuple[str, ...]:
        return DEFAULT_RESYNC if self.resync is None else self.resync

    # -- the history
    def run(self) -> Outcome:
        from stripe_sandbox import Sandbox

        began = time.monotonic()
        with Sandbox(seed=self.h.seed, scale=0.02, volumes=VOLUMES, accounts=MAX_ACCOUNTS, now=SANDBOX_NOW,
                     history_days=HISTORY_DAYS) as self.sb:
            self.probe = SandboxProbe(self.sb)
            if self.h.mode == "platform":  # rows of the key's own account: named by its id, or null
                self.target.aliases[self.probe.own_account()] = None
            for number, step in enumerate(self.h.steps, 1):
                if isinstance(step, (Run, KillLoop)):  # its processes' lines follow
                    self.outcome.log.append(f"{number:2d}. {step}")
                note = self.apply(step)
                if note:
                    self.outcome.log.append(f"{number:2d}. {note}")
            self.sb.clear_faults()
            self.faults.clear()
            self.revoked.clear()
            self.off = ()
            self.end = None
            self.sb.advance(1)  # a run's upper bound is exclusive: the last changes' second must be over
            self.outcome.log.append("final: clear faults, restore permissions, select every stream, no end_date, "
                                    "clock +1 s")
            self.outcome.runs += 1
            for proc in self.procs:
                self.run_process(proc, None, 0, final=True)
            self.compare()
        self.outcome.seconds = time.monotonic() - began
        self.outcome.allowed_extra = len(self.allowed_extra)
        return self.outcome

    def apply(self, step) -> str | None:
        sb = self.sb
        if isinstance(step, Advance):
            sb.advance(step.seconds)
            return f"{step} -> {rfc3339(sb.now)}"
        if isinstance(step, (Create, Update, Delete, ChildCreate, ChildUpdate, ChildDelete)):
            return self.change(step)
        if isinstance(step, Fault):
            self.faults.append(step)
            return str(step)
        if isinstance(step, Latency):
            sb.set_latency(step.ms, step.ms / 2)
            return str(step)
        if isinstance(step, SetResync):
            self.resync = tuple(step.streams)
            return str(step)
        if isinstance(step, SetEndDate):
            if step.days_ago is None:
                self.end = None
                return str(step)
            end = sb.now - step.days_ago * DAY
            if end <= self.start:
                return f"{step}: before start_date, not set"
            self.end = end
            return f"{step} = {rfc3339(end)}"
        if isinstance(step, AddAccount):
            if self.h.mode != "connected" or self.n_accounts >= MAX_ACCOUNTS:
                return f"{step}: no effect ({'platform mode' if self.h.mode != 'connected' else 'all added'})"
            self.n_accounts += 1
            return f"{step}: account_ids has {self.n_accounts}"
        if isinstance(step, Shard):
            if self.h.mode != "connected" or self.procs[0].shards:
                return f"{step}: no effect ({'platform mode' if self.h.mode != 'connected' else 'already sharded'})"
            state = self.procs[0].state
            self.procs = [Proc(i, step.n, copy.deepcopy(state)) for i in range(step.n)]
            return str(step)
        if isinstance(step, Select):
            self.off = tuple(step.off)
            return str(step)
        if isinstance(step, Revoke):
            self.revoked[step.path] = max(step.runs, self.revoked.get(step.path, 0))
            return str(step)
        if isinstance(step, (Run, KillLoop)):
            self.outcome.runs += 1
            for path in self.revoked:
                self.faults.append(Fault("403", path))
            for rule in self.faults:
                self.sb.add_fault(rule.path, rule.kind, count=rule.count, skip=rule.skip,
                                  rate=None if rule.count is not None else 1.0,
                                  permission="rak_simulated_read" if rule.kind == "403" else None)
            if isinstance(step, KillLoop):
                for proc in self.procs:
                    self.kill_loop(proc, step)
            else:
                victim = step.shard % len(self.procs)
                for proc in self.procs:
                    self.run_process(proc, step.kill if proc.index == victim else None, step.at)
            self.sb.clear_faults()
            self.faults.clear()
            self.revoked = {path: n - 1 for path, n in self.revoked.items() if n > 1}
            return None
        raise TypeError(step)

    def readable(self, stream: str) -> bool:
        """Whether this run reads `stream`'s list: selected, its permission not revoked."""
        path = f"/v1/{stream}"
        return stream not in self.off and not any(
            path.startswith(rule.path.rstrip("*")) for rule in self.faults if rule.kind in PERMISSION_FAULTS)

    def kill_loop(self, proc: Proc, step: KillLoop) -> None:
        """Runs of `proc` killed every K records until one ends, and the progress they made."""
        faulty = bool(self.faults)
        needed = self.count_records(proc)
        every = max(1, math.ceil(step.every / 1000 * needed))
        bound = needed // every + 1
        written = runs = 0
        finished = False
        while runs < 3 * bound + 3:
            runs += 1
            records, returncode, signalled = self.run_process(proc, step.kill, 0, kill_records=every)
            written += records
            if returncode == 0:
                finished = True
                break
            if not signalled:  # failed by a fault, not stopped: the next Run resumes
                break
        # What every run writes again by its settings (full tables without events, re-reads due
        # every run, the lookback): a run from the state the loop ended with, nothing changed. A
        # loop that never finished is finished first by an uninterrupted run: otherwise what its
        # runs write again (a reconciliation due every run, larger than K) would count as zero.
        if not finished and not faulty and (step.kill == "TERM" or every >= KILL_PROGRESS_RECORDS):
            self.run_process(proc, None, 0)
        again = self.count_records(proc)
        # Progress is promised where those re-writes leave most of K: near K, what a run keeps
        # depends on where among them the kill lands.
        measured = (step.kill == "TERM" or every >= KILL_PROGRESS_RECORDS) and 2 * again < every
        self.outcome.progress.append((needed, written, runs, every, finished, measured))
        self.outcome.log.append(f"    {proc.label}: {runs} runs killed every {every} records wrote {written} "
                                f"records for {needed}" + ("" if finished else ", never finished") +
                                f"; a run writes {again} again")
        # A SIGKILL loses what was written since the last STATE (the tap writes one at least every
        # 100 records) and the page in flight: progress is promised for kills at least ten such
        # spans apart. SIGTERM ends with a true STATE, so its progress is checked at any K.
        # A run that writes `again` records whatever happened before progresses K - again per kill.
        bound = math.ceil(needed / max(1, every - again)) + 1 if again else bound
        if not faulty and measured and (not finished or runs > bound or written > 1.5 * needed + runs * again):
            self.finding("no-progress", "-", f"{proc.label}: killed every {every} records, {runs} runs "
                         f"{'finished' if finished else 'did not finish'} a load of {needed} records (at most "
                         f"{bound} runs expected) and wrote {written} records ({written / max(1, needed):.2f}x, "
                         f"at most 1.5x plus {again} a run expected)")

    def change(self, step) -> str:
        sb, account = self.sb, self.sandbox_index(step.account)
        self.seq += 1
        mark = {"metadata": {"sim": str(self.seq)}}
        stream = step.stream
        if isinstance(step, Create):
            at = max(sb.now - step.late, 0)
            obj = sb.create(stream, mark, at=at, account=account)
            self._op(stream, account, obj["id"], "create", at)
            self.outcome.changes += 1
            return f"{step}: {obj['id']} at {rfc3339(at)}"
        if isinstance(step, ChildCreate):
            parents = sb.truth(CHILDREN[stream], account)
            if not parents:
                return f"{step}: no parent, skipped"
            parent = parents[step.pick % len(parents)]
            obj = sb.create(stream, mark, account=account, parent=parent["id"])
            self.child_added.add(obj["id"])
            self._op(CHILDREN[stream], account, parent["id"], "child", sb.now)
            self.outcome.changes += 1
            return f"{step}: {obj['id']} on {parent['id']}"
        live = sb.truth(stream, account)
        if not live:
            return f"{step}: none live, skipped"
        obj = live[step.pick % len(live)]
        self.outcome.changes += 1
        if isinstance(step, (Update, ChildUpdate)):
            sb.update(stream, obj["id"], mark, account=account)
            if isinstance(step, Update):
                self._op(stream, account, obj["id"], "update", sb.now)
            return f"{step}: {obj['id']} metadata.sim={self.seq}"
        if isinstance(step, ChildDelete) and stream in EMBEDDED_IN:
            parent = self.probe.parent(stream, account, obj["id"])
            embedded = next((p.get(EMBEDDED_IN[stream]) or {} for p in sb.truth(CHILDREN[stream], account)
                             if p["id"] == parent), {})
            if obj["id"] not in {item.get("id") for item in embedded.get("data") or []}:
                self.unlisted_child_deletions.add((stream, account, obj["id"]))
        sb.delete(stream, obj["id"], account=account)
        if stream != "subscriptions":
            self.deleted_at[(stream, account, obj["id"])] = sb.now
            self.deleted_seq[(stream, account, obj["id"])] = self.seq
        if isinstance(step, Delete):
            if stream == "subscriptions":  # a cancellation: the subscription stays, canceled
                self._op(stream, account, obj["id"], "cancel", sb.now)
            else:
                self._op(stream, account, obj["id"], "delete", sb.now)
                self.deletions.append((stream, account, obj["id"], sb.now))
        return f"{step}: {obj['id']}"

    def _op(self, stream, account, oid, kind, at):
        self.ops.setdefault((stream, account, oid), []).append(Op(kind, at, self.seq))

    # -- one tap process
    def _argv(self, proc: Proc) -> tuple[Path, dict, list[str]]:
        folder = self.workdir / f"proc{proc.index}"
        folder.mkdir(exist_ok=True)
        config = self.config(proc)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "catalog.json").write_text(catalog_json(self.off))  # only the selected streams selected
        argv = ["--config", str(folder / "config.json"), "--catalog", str(folder / "catalog.json")]
        if proc.state is not None:
            (folder / "state.json").write_text(json.dumps(proc.state))
            argv += ["--state", str(folder / "state.json")]
        return folder, config, argv

    def count_records(self, proc: Proc) -> int:
        """The records a clean run of `proc`'s state writes (faults set aside: GETs change nothing)."""
        folder, _, argv = self._argv(proc)
        with self.probe.faults_set_aside():
            dry = self.runner.run(argv, folder)
        self.outcome.processes += 1
        return sum(1 for line in dry.lines if line.startswith(b'{"type":"RECORD"'))

    def run_process(self, proc: Proc, kill: str | None, at: int, final: bool = False,
                    kill_records: int | None = None) -> tuple[int, int, str | None]:
        """One tap process; returns (records written, exit code, signal sent)."""
        folder, config, argv = self._argv(proc)
        kill_at = None
        note = f", SIG{kill} after {kill_records} records" if kill_records is not None else ""
        dry_records = None
        if kill and kill_records is None:
            # The kill point is drawn from the lines this very run writes: a clean run of the
            # same state, with the faults set aside (GETs change nothing in the sandbox).
            with self.probe.faults_set_aside():
                dry = self.runner.run(argv, folder)
            self.outcome.processes += 1
            kill_at = max(1, math.ceil(at / 1000 * len(dry.lines)))
            dry_records = sum(1 for line in dry.lines if line.startswith(b'{"type":"RECORD"'))
            note = f", SIG{kill} at line {kill_at} of {len(dry.lines)}"
        from tap_stripe.settings import several_accounts

        multi = several_accounts(config)
        self.last_multi = multi  # the last run: whether it could send ACTIVATE_VERSION
        input_state = copy.deepcopy(proc.state or {})
        self._note_expired_deletions(proc, input_state, multi)
        result = self.runner.run(argv, folder, kill_at, kill or "KILL", kill_records)
        self.outcome.processes += 1
        number = self.outcome.processes
        (folder / f"run{number:03d}.out").write_bytes(b"".join(result.lines) + result.partial)
        (folder / f"run{number:03d}.err").write_text(result.stderr)
        if result.signalled:
            self.outcome.kills += 1
        checker = StateChecker(self, proc, input_state, multi)
        states = records = 0
        activated: set[str] = set()  # streams this run sent ACTIVATE_VERSION for
        held = {stream: set(table) for stream, table in self.target.tables.items() if stream in STREAMS}
        for number, raw in enumerate(result.lines, 1):
            try:
                message = json.loads(raw)
            except ValueError:
                self.finding("malformed-line", "-", f"{proc.label} line {number}: {raw[:120]!r}")
                continue
            self.target.apply(message)
            if message.get("type") == "ACTIVATE_VERSION":
                activated.add(message["stream"])
            if message.get("type") == "RECORD":
                records += 1
            elif message.get("type") == "STATE":
                states += 1
                checker.check(message["value"])
                proc.state = message["value"]
        if not multi:
            self._note_activations(proc, input_state, activated)
        self._check_dropped(proc, held)
        if result.partial and result.signalled != "KILL":  # only SIGKILL may cut a line
            how = "stopped by SIGTERM" if result.signalled else "not killed"
            self.finding("malformed-line", "-", f"{proc.label}: a run {how} ended with a cut line "
                         f"{result.partial[:80]!r} (exit {result.returncode})")
        if result.signalled == "TERM" and result.returncode == 0 and not self.faults and dry_records is not None \
                and records < dry_records:
            self.finding("stopped-exit-0", "-", f"{proc.label}: stopped by SIGTERM after {records} of its "
                         f"{dry_records} records, yet exit 0 (an orchestrator takes the run for a success)")
        if result.hung:
            self.finding("hung", "-", f"{proc.label}: still running after {HUNG_SECONDS}s, killed")
        elif not kill and not self.faults and result.returncode != 0:
            self.finding("clean-run-failed", "-", f"{proc.label}: exit {result.returncode} without a fault or a "
                         f"kill: {_last_error(result.stderr)}")
        self.outcome.log.append(
            f"    {proc.label}{' (final)' if final else ''}: {len(result.lines)} lines{note}, {records} records, "
            f"{states} STATEs, exit {result.returncode}"
            + (", cut last line" if result.partial else "")
            + (f" [{_last_error(result.stderr)}]" if result.returncode not in (0, -9, -15) else ""))
        return records, result.returncode, result.signalled

    def _check_dropped(self, proc: Proc, held: dict[str, set]) -> None:
        """No run removes the row of an object still live in Stripe (created after start_date):
        not a deletion record, not an ACTIVATE_VERSION of a re-read that did not read it (one
        bounded by end_date, say). Changes happen between runs, so the truth is the run's."""
        accounts = {self.account_id(a): a for a in self.proc_accounts(proc)}
        for stream, keys in held.items():
            gone = keys - set(self.target.tables.get(stream, {}))
            for account_id, oid in sorted((k[0], k[-1]) for k in gone if k[0] in accounts):
                live = self.truth(stream, accounts[account_id]).get(oid)
                if live is not None and live[0] >= self.start:
                    self.finding("live-row-dropped", stream, f"{proc.label}: the row of {oid} of "
                                 f"{_label(account_id)}, live in Stripe, was removed"
                                 f"{' (end_date ' + rfc3339(self.end) + ')' if self.end else ''}")

    def _note_activations(self, proc: Proc, input_state: dict, activations: set[str]) -> None:
        """A resync that ends, or is carried in the state to a run that ends it, activates its
        table version: rows of objects (and children) gone before that version *began* are
        dropped. A resumed version began in the run that started it, so its rows written
        before a deletion stay (with the deleted parent's children: the second limit)."""
        def resync(state, stream, account_id):
            cursors = (state or {}).get("bookmarks", {}).get(stream, {}).get("accounts", {}) \
                .get(account_id or "default", {})
            return cursors.get("resync") or {}

        def version(state, stream, account_id):
            return resync(state, stream, account_id).get("version")

        for account in self.proc_accounts(proc):
            account_id = self.account_id(account)
            for stream in filter(self.readable, self.resync_streams()):
                before, after = version(input_state, stream, account_id), version(proc.state, stream, account_id)
                began = self.resync_began.setdefault((stream, account, before), self.seq) if before else self.seq
                if after is not None:
                    self.resync_began.setdefault((stream, account, after), began if after == before else self.seq)
                if stream in activations or after is not None:
                    activated = after if after is not None else before
                    seq = self.resync_began.get((stream, account, activated), began) if activated else began
                    self.activating_resyncs.setdefault((stream, account), []).append(seq)
                    # Its children's rows are dropped by their own ACTIVATE_VERSION: sent for the
                    # children that received the whole re-read (one skipped on a 403 gets none),
                    # or due at the end of one still in progress for those its state names.
                    members = resync(proc.state, stream, account_id).get("streams", []) if after is not None \
                        else activations
                    for child in members:
                        if CHILDREN.get(child) == stream:
                            self.activating_resyncs.setdefault((child, account), []).append(seq)

    def finding(self, category: str, stream: str, detail: str) -> None:
        self.outcome.findings.append(Finding(category, stream, detail))

    def _note_expired_deletions(self, proc: Proc, state: dict, multi: bool) -> None:
        """THE FIRST DOCUMENTED LIMIT (the second is in `_extra`). With several accounts no ACTIVATE_VERSION is sent, so
        the tap learns of a deletion only from its `*.deleted` event. A deletion whose event
        Stripe no longer keeps (older than 30 days) when the tap's events bookmark still
        precedes it cannot be seen by anyone: that object's row may stay in the target.

        Exactly: a run reading several accounts starts with an events bookmark e of the
        stream and account, and a deletion at d with e <= d < Stripe's clock - 30 days, and
        no run without end_date while the event was kept (d up to d + 30 days) read that stream
        and account as a full resync (such a run had the chance the tap did not take: the known loss of
        deletions by full-resync streams with several accounts is not excused). Nothing else
        is: not a single account (the tap can version its re-read), not a deletion still in
        Stripe's retention, not a stream without an events bookmark."""
        account_ids = {self.account_id(a): a for a in self.proc_accounts(proc)}
        # A run bounded by end_date begins no full resync and reads no event after end_date: no chance.
        resync = [s for s in self.resync_streams() if self.readable(s)] if self.end is None else []
        for account in account_ids.values():
            for stream in resync:
                self.resync_runs.setdefault((stream, account), []).append((self.sb.now, self.seq))
        if not multi:
            return
        horizon = self.sb.now - EVENT_RETENTION
        # A child's deletion (an item removed from a subscription) is seen in its parent's events.
        child_deletions = [(stream, account, oid, at) for (stream, account, oid), at in self.deleted_at.items()
                           if stream in CHILDREN]
        for stream, account, oid, at in [*self.deletions, *child_deletions]:
            account_id = self.account_id(account)
            if account_id not in account_ids:
                continue
            events_stream = CHILDREN.get(stream, stream)
            cursors = state.get("bookmarks", {}).get(events_stream, {}).get("accounts", {}) \
                .get(account_id or "default", {})
            events = cursors.get("events")
            deleted_seq = self.deleted_seq.get((stream, account, oid), 0)
            chances = [t for t, n in self.resync_runs.get((events_stream, account), [])
                       if n >= deleted_seq and at <= t < at + EVENT_RETENTION]
            if isinstance(events, int) and events <= at < horizon and not chances:
                self.allowed_extra.add((stream, account_id, oid))

    # -- the sandbox's truth
    def parent_of(self, stream: str, account: int, oid: str) -> tuple[str, int]:
        """A child object's parent: (its id, its creation time)."""
        parent = self.probe.parent(stream, account, oid)
        return parent, self.created_of(CHILDREN[stream], account, parent)

    def created_of(self, stream: str, account: int, oid: str) -> int:
        """An object's creation time; a child's is its parent's (children are read with it)."""
        if stream in CHILDREN:
            return self.parent_of(stream, account, oid)[1]
        return self.probe.created(stream, account, oid)

    def truth(self, stream: str, account: int) -> dict[str, tuple[int, dict]]:
        """id -> (created, object) of the live objects."""
        return {obj["id"]: (self.created_of(stream, account, obj["id"]), obj) for obj in self.sb.truth(stream, account)}

    def compare(self) -> None:
        """The target after the final clean run against the sandbox, stream by stream: the
        sandbox's truth shaped as the tap emits it (conftest.expected_rows), compared with
        conftest.comparable (all but `_updated_at` and `_account_id`)."""
        from conftest import comparable, expected_rows

        read = {self.account_id(a) for proc in self.procs for a in self.proc_accounts(proc)}
        for stream, table in self.target.tables.items():
            for (account_id, *key), _ in table.items():
                if account_id not in read:
                    self.finding("unknown-extra", stream, f"{key} of {_label(account_id)}, an account not read")
        for proc in self.procs:
            for account in self.proc_accounts(proc):
                account_id = self.account_id(account)
                for stream in STREAMS:
                    truth = self.truth(stream, account)
                    expected = expected_rows(self.sb, stream, account_id)
                    rows = self.target.rows(stream, account_id)
                    self.outcome.rows_checked += len(truth)
                    wanted = {oid for oid, (created, _) in truth.items() if created >= self.start}
                    for oid in sorted(wanted - set(rows)):
                        self.finding("missing", stream, f"{oid} of {_label(account_id)}"
                                     f"{self._history_of(stream, account, oid)}")
                    for oid in sorted(wanted & set(rows)):
                        if comparable(rows[oid]) != comparable(expected[oid]):
                            self.finding("stale", stream, f"{oid} of {_label(account_id)}: "
                                         f"{_difference(rows[oid], expected[oid])}"
                                         f"{self._history_of(stream, account, oid)}")
                    for oid in sorted(set(rows) - wanted):
                        self._extra(stream, account, account_id, oid, truth)

    def _extra(self, stream, account, account_id, oid, truth) -> None:
        where = f"{oid} of {_label(account_id)}"
        if oid in truth:
            self.finding("before-start", stream, f"{where} created {rfc3339(truth[oid][0])}, start_date "
                         f"{rfc3339(self.start)}{self._history_of(stream, account, oid)}")
            return
        if (stream, account_id, oid) in self.allowed_extra:
            return
        deleted = self.deleted_at.get((stream, account, oid))
        if stream in CHILDREN:
            if deleted is not None and (stream, account, oid) in self.unlisted_child_deletions and not any(
                    n >= self.deleted_seq[(stream, account, oid)]
                    for n in self.activating_resyncs.get((stream, account), [])):
                # THE THIRD DOCUMENTED LIMIT (README, Known limits): a child without events of its
                # own is seen removed only in its parent's `previous_attributes`, which hold the
                # first page the parent embeds; this one was beyond it, and no full re-read came.
                self.allowed_extra.add((stream, account_id, oid))
                return
            if deleted is not None:
                self.finding("deleted-child-kept", stream, f"{where} deleted at {rfc3339(deleted)}")
                return
            parent_stream = CHILDREN[stream]
            parent = self.parent_of(stream, account, oid)[0]
            gone = self.deleted_at.get((parent_stream, account, parent))
            if gone is not None and not any(n >= self.deleted_seq[(parent_stream, account, parent)]
                                            for n in self.activating_resyncs.get((stream, account), [])):
                # THE SECOND DOCUMENTED LIMIT (README, Known limits): Stripe sends no event for
                # the children of a deleted object, and the deleted object does not embed these;
                # only a full re-read as a table version (one account) that the child stream
                # received drops them, and none came.
                self.allowed_extra.add((stream, account_id, oid))
                return
            if gone is not None:
                self.finding("orphan-child-kept", stream, f"{where}: its {parent_stream[:-1]} {parent} was deleted "
                             f"at {rfc3339(gone)}")
                return
        elif deleted is not None and stream in deletions_without_events() and self.last_multi:
            # A DOCUMENTED LIMIT (README, Known limits): Stripe sends no event when such an object
            # is deleted, and with several accounts no ACTIVATE_VERSION drops it.
            self.allowed_extra.add((stream, account_id, oid))
            return
        elif deleted is not None:
            self.finding("deleted-kept", stream, f"{where} deleted at {rfc3339(deleted)}"
                         f"{self._history_of(stream, account, oid)}")
            return
        self.finding("unknown-extra", stream, where)

    def _history_of(self, stream, account, oid) -> str:
        ops = self.ops.get((stream, account, oid))
        if not ops:
            return ""
        return " (changes: " + ", ".join(f"{o.kind}#{o.seq}@{rfc3339(o.at)}" for o in ops) + ")"


class StateChecker:
    """Checks every STATE a process writes, as the target receives it.

    - regressed: each (stream, account) bookmark the run started with is still there;
    - backwards: no `created` or `events` bookmark goes below the value the run started with
      (a re-read bounded by end_date must not pull them back);
    - created cursors (and a resync's `created`, per table version): when one moves to c,
      every live object created in [start_date, c) — for a child stream, every child of a
      parent created there, except children added later, which come through the parent's
      events — was already written (by this run or an earlier one);
    - events cursors: when one moves to e, every change before e of an object the list will
      not read again (created before the stream's created cursor less the lookback) is
      applied: the object's row reflects it (metadata.sim), or a deletion removed it.
    """

    def __init__(self, sim: Simulation, proc: Proc, input_state: dict, multi: bool):
        self.sim = sim
        self.proc = proc
        self.multi = multi
        self.input = input_state
        self.accounts = sim.proc_accounts(proc)
        self.last: dict[tuple, Any] = {}
        for stream, bookmark in input_state.get("bookmarks", {}).items():
            for account, cursors in (bookmark.get("accounts") or {}).items():
                for key in ("created", "events"):
                    self.last[(stream, account, key)] = cursors.get(key)
                self.last[(stream, account, "resync")] = (cursors.get("resync") or {}).get("created")
        self.began = {key: value for key, value in self.last.items() if key[2] != "resync" and isinstance(value, int)}
        self._truth: dict = {}

    def truth(self, stream, account):
        key = (stream, account)
        if key not in self._truth:
            self._truth[key] = self.sim.truth(stream, account)
        return self._truth[key]

    def check(self, state: dict) -> None:
        sim = self.sim
        bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
        for stream, bookmark in self.input.get("bookmarks", {}).items():
            for account in bookmark.get("accounts") or {}:
                if account not in ((bookmarks or {}).get(stream) or {}).get("accounts", {}):
                    sim.finding("state-regressed", stream, f"{self.proc.label}: STATE {json.dumps(state)[:100]} "
                                f"lost the bookmark of {account}")
                    return
        if not bookmarks:
            return
        for (stream, account, name), began in list(self.began.items()):
            value = ((bookmarks.get(stream) or {}).get("accounts", {}).get(account) or {}).get(name)
            if isinstance(value, int) and value < began:
                sim.finding("bookmark-backwards", stream, f"{self.proc.label}: STATE moved {name} of {account} back "
                            f"from {rfc3339(began)} to {rfc3339(value)}"
                            + (f" (end_date {rfc3339(sim.end)})" if sim.end else ""))
                del self.began[(stream, account, name)]  # once per run
        for account in self.accounts:
            account_id = sim.account_id(account)
            key = account_id or "default"
            for stream in TOP_LEVEL:
                cursors = (bookmarks.get(stream) or {}).get("accounts", {}).get(key) or {}
                created = cursors.get("created")
                if self._moved(stream, key, "created", created):
                    self._created(stream, account, account_id, created, None)
                resync = cursors.get("resync") or {}
                # A resync claims its rows for the streams that received all of it (`streams`):
                # a parent deselected while its child is read is not among them.
                if self._moved(stream, key, "resync", resync.get("created")) and \
                        stream in resync.get("streams", (stream,)):
                    version = resync.get("version") if not self.multi else None
                    self._created(stream, account, account_id, resync["created"], version)
                if self._moved(stream, key, "events", cursors.get("events")) and created is not None \
                        and not resync:  # a resync in progress reads the whole list again
                    self._events(stream, account, account_id, cursors["events"], created)
            for child in CHILDREN:
                cursors = (bookmarks.get(child) or {}).get("accounts", {}).get(key) or {}
                if self._moved(child, key, "created", cursors.get("created")):
                    self._created(child, account, account_id, cursors["created"], None)

    def _moved(self, stream, account_key, name, value) -> bool:
        before = self.last.get((stream, account_key, name))
        self.last[(stream, account_key, name)] = value
        return value is not None and value != before

    def _created(self, stream, account, account_id, cursor, version) -> None:
        sim = self.sim
        behind = []
        for oid, (created, _) in self.truth(stream, account).items():
            if not sim.start <= created < cursor or oid in sim.child_added:
                continue
            written = sim.target.seen.get((stream, account_id, oid), set())
            if not written or (version is not None and version not in written):
                behind.append(oid)
        if behind:
            what = "resync created" if version is not None else "created"
            sim.finding("state-ahead", stream, f"{self.proc.label}: STATE moved {what} of {_label(account_id)} to "
                        f"{rfc3339(cursor)} before writing {', '.join(sorted(behind)[:4])}"
                        + (f" (+{len(behind) - 4})" if len(behind) > 4 else ""))

    def _events(self, stream, account, account_id, cursor, created_cursor) -> None:
        sim = self.sim
        rows = sim.target.rows(stream, account_id)
        truth = self.truth(stream, account)
        for (s, a, oid), ops in sim.ops.items():
            if s != stream or a != account:
                continue
            before = [op for op in ops if op.at < cursor and op.kind != "child"]
            if not before:
                continue
            created = truth[oid][0] if oid in truth else sim.created_of(stream, account, oid)
            if not sim.start <= created < created_cursor - LOOKBACK:
                continue
            last = before[-1]
            row = rows.get(oid)
            if last.kind == "delete":
                if row is not None and (stream, account_id, oid) not in sim.allowed_extra:
                    sim.finding("state-ahead", stream, f"{self.proc.label}: STATE moved events of {_label(account_id)} "
                                f"to {rfc3339(cursor)} with {oid} (deleted at {rfc3339(last.at)}) still in the target")
            elif last.kind == "cancel" and row is not None and row.get("status") != "canceled":
                sim.finding("state-ahead", stream, f"{self.proc.label}: STATE moved events of {_label(account_id)} to "
                            f"{rfc3339(cursor)} before applying the cancellation of {oid} at {rfc3339(last.at)}")
            elif row is None:
                if not any(op.kind == "delete" for op in ops):
                    sim.finding("state-ahead", stream, f"{self.proc.label}: STATE moved events of {_label(account_id)} "
                                f"to {rfc3339(cursor)} with {oid} (changed at {rfc3339(last.at)}) not in the target")
            elif last.kind != "cancel" and sim_seq(row) < last.seq:
                sim.finding("state-ahead", stream, f"{self.proc.label}: STATE moved events of {_label(account_id)} to "
                            f"{rfc3339(cursor)} before applying change #{last.seq} of {oid} at {rfc3339(last.at)} "
                            f"(the row has #{sim_seq(row)})")


def _label(account_id: str | None) -> str:
    return account_id or "the platform"


def _difference(got: dict, expected: dict) -> str:
    keys = sorted(k for k in set(got) | set(expected) if k not in ("_updated_at", "_account_id")
                  and got.get(k) != expected.get(k))
    parts = []
    for k in keys[:3]:
        if k == "metadata":
            parts.append(f"metadata.sim {sim_seq(got)} instead of {sim_seq(expected)}")
        else:
            parts.append(f"{k} differs")
    return ", ".join(parts) + (f" (+{len(keys) - 3} fields)" if len(keys) > 3 else "")


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("tap-stripe: error:") or "Traceback" in line
             or line.startswith(("Error", "RuntimeError", "ValueError", "KeyError"))]
    return (lines[-1] if lines else (stderr.strip().splitlines() or ["no stderr"])[-1])[:200]


# ---------------------------------------------------------------------------------------------- entry points
_RUNNER: TapRunner | None = None


def shared_runner() -> TapRunner:
    global _RUNNER
    if _RUNNER is None:
        import atexit

        _RUNNER = TapRunner()
        atexit.register(_RUNNER.close)
    return _RUNNER


def simulate(history: History, runner: TapRunner | None = None, target: Target | None = None,
             keep: Path | None = None) -> Outcome:
    """Run one history in a temporary folder (or `keep`) and return what it found."""
    runner = runner or shared_runner()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return Simulation(history, runner, keep, target).run()
    with tempfile.TemporaryDirectory(prefix="tap-stripe-sim-") as folder:
        return Simulation(history, runner, Path(folder), target).run()


def check(history: History, **kwargs) -> Outcome:
    """`simulate`, raising the mismatch (named by its first category) with the full report."""
    outcome = simulate(history, **kwargs)
    if not outcome.ok:
        raise MISMATCH_TYPES[outcome.categories[0]](outcome.report())
    return outcome


class Memo:
    """`check` for hypothesis: each history runs once, its outcome is replayed after.

    A history's runs are concurrent processes killed at a line, so replaying one may go
    another way; the first outcome stands, so hypothesis sees a failing history fail every
    time (no Flaky).

    Shrinking: a history costs seconds (every run is a process), and hypothesis' shrinker,
    which tries many small changes, gets a handful of tries in a bounded test. So by default
    (`shrinker="ddmin"`) the first failing history is shrunk here by delta debugging
    (`shrink`: halves, quarters, … of the steps, then single steps, then simpler steps)
    for `shrink_seconds`, keeping its kind of failure, and the failure message shows the
    shrunk history (and the one hypothesis drew). With `shrinker="hypothesis"` hypothesis
    shrinks instead (run the test with its shrink phase): after `shrink_seconds`, histories
    not run yet pass without running, so the smallest failure so far is what it reports."""

    def __init__(self, shrink_seconds: float, shrinker: str = "ddmin"):
        self.shrink_seconds = shrink_seconds
        self.shrinker = shrinker
        self.outcomes: dict[str, tuple[Outcome, str | None]] = {}
        self.first_failure: float | None = None
        self.skipped = 0

    def __call__(self, history: History) -> None:
        key = history.to_json()
        if key not in self.outcomes:
            if self.first_failure is not None and time.monotonic() - self.first_failure > self.shrink_seconds:
                self.skipped += 1
                return
            outcome = simulate(history)
            message = None
            if not outcome.ok and self.first_failure is None:
                self.first_failure = time.monotonic()
                if self.shrinker == "ddmin":
                    message = self._shrunk(outcome)
            self.outcomes[key] = (outcome, message)
        outcome, message = self.outcomes[key]
        if not outcome.ok:
            raise MISMATCH_TYPES[outcome.categories[0]](message or outcome.report())

    def _shrunk(self, outcome: Outcome) -> str:
        wanted = outcome.categories[0]
        smallest = outcome

        def fails(candidate: History) -> bool:
            nonlocal smallest
            result = simulate(candidate)
            if not result.ok and result.categories[0] == wanted:
                smallest = result
                return True
            return False

        shrink(outcome.history, fails, budget=self.shrink_seconds)
        if smallest is outcome:
            return outcome.report()
        return (f"SHRUNK from {len(outcome.history.steps)} to {len(smallest.history.steps)} steps "
                f"(same first mismatch: {wanted}):\n\n{smallest.report()}\n\n"
                f"---- the history hypothesis drew:\n{outcome.report()}")


def shrink(history: History, fails, budget: float = 300.0, log=None) -> History:
    """A smaller history for which `fails(history)` still holds: delta debugging over the
    steps (chunks, then single steps), then simpler steps, within `budget` seconds."""
    deadline = time.monotonic() + budget
    best = history

    def attempt(candidate: History) -> bool:
        nonlocal best
        if time.monotonic() > deadline:
            return False
        if fails(candidate):
            if log:
                log(f"  shrunk to {len(candidate.steps)} steps" if len(candidate.steps) < len(best.steps)
                    else f"  simplified: {candidate.steps and candidate.describe().splitlines()[0]}")
            best = candidate
            return True
        return False

    chunk = max(1, len(best.steps) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i = 0
        changed = False
        while i < len(best.steps) and time.monotonic() < deadline:
            steps = best.steps[:i] + best.steps[i + chunk:]
            if attempt(History(**{**asdict_shallow(best), "steps": steps})):
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    for i in range(len(best.steps)):
        for simpler in _simpler(best.steps[i]):
            steps = (*best.steps[:i], simpler, *best.steps[i + 1:])
            if attempt(History(**{**asdict_shallow(best), "steps": steps})):
                break
    for name, value in (("workers", 4), ("accounts", 1), ("mode", "platform")):
        if getattr(best, name) != value:
            attempt(History(**{**asdict_shallow(best), name: value}))
    return best


def asdict_shallow(history: History) -> dict:
    return {f.name: getattr(history, f.name) for f in fields(history)}


def _simpler(step) -> list:
    if isinstance(step, Run) and step.kill:
        return [Run()]
    if isinstance(step, KillLoop):
        return [Run()]
    if isinstance(step, Revoke) and step.runs > 1:
        return [Revoke(step.path, 1)]
    if isinstance(step, Select) and len(step.off) > 1:
        return [Select(step.off[:1]), Select(step.off[1:])]
    if isinstance(step, Advance) and step.seconds > 1:
        return [Advance(1)] + ([Advance(DAY)] if step.seconds > DAY else [])
    if isinstance(step, (Update, Delete, ChildCreate, ChildUpdate, ChildDelete)) and step.pick:
        return [type(step)(step.stream, step.account, 0)]
    if isinstance(step, Create) and step.late:
        return [Create(step.stream, step.account, 0)]
    return []
