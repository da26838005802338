"""Mutation testing of the code that moves bookmarks (see docs/mutation.md).

Two stages, because most of the tap's tests run it as a subprocess (`python -m tap_stripe`),
which mutmut's own runner cannot see:

1. `mutmut run` in a private copy of the repo, with the fast in-process unit tests of each
   module. mutmut picks, per function, the tests that call it (measured in-process).
2. Every mutant stage 1 did not kill goes through the slow existing tests of its module
   ("e2e" below: the tap run in a subprocess, or a sandbox over HTTP). A subprocess imports
   the mutated tree (PYTHONPATH=<copy>/mutants) and inherits MUTANT_UNDER_TEST, so mutmut's
   trampolines switch the mutant on in there too.
   Only the tests whose run executes the mutated line (line coverage measured once per
   test, subprocesses included) are run, fastest first, stopping at the first failure.
   A mutant whose line no test executes is reported as `not covered`.

Usage (from the repo root, with the project venv):

    .venv/bin/python scripts/mutation.py                     # every module
    .venv/bin/python scripts/mutation.py windows state       # some modules
    .venv/bin/python scripts/mutation.py --no-e2e            # stage 1 only (a few minutes)

The repo ($MUTATION_SOURCE, default this script's repo) is copied to $MUTATION_DIR (default
/tmp/tap-stripe-mutation) and mutated there; the working tree is never touched. The coverage
of the end-to-end tests is saved in $MUTATION_DIR/e2e-coverage/map.json; a run of the same
commit elsewhere can reuse it with MUTATION_COVERAGE_MAP=<that file>. One worker throughout:
`mutmut run --max-children 1`, then one end-to-end test at a time.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(os.environ.get("MUTATION_SOURCE", Path(__file__).resolve().parents[1]))
PYTHON = sys.executable
MUTMUT = str(Path(PYTHON).with_name("mutmut"))

# What is mutated, and by which tests. `functions` limits a module to the bookmark code
# (mutmut mutant-name patterns); `unit` are fast in-process test files (stage 1); `e2e` are
# the slow tests (stage 2): those running the tap in a subprocess, or against a sandbox,
# whose subject is the module's bookmarks, windows, events or intervals.
# (The whole of test_engine.py is ~40 s a mutant on an idle machine, several minutes on a
# busy one; these are the ones whose subject is the code mutated here.)
ENGINE = "tests/test_engine.py::"
INCREMENTAL = ENGINE + "test_initial_then_incremental_run_matches_the_sandbox"
BOOKMARK_SECOND = ENGINE + "test_objects_created_in_the_bookmark_second_are_not_dropped"
EMPTY_WINDOW = ENGINE + "test_an_empty_window_still_moves_the_bookmark"
BURST = ENGINE + "test_more_than_ten_thousand_objects_in_one_second"
KILLED_RESUMED = ENGINE + "test_killed_at_a_random_point_then_resumed_loses_nothing[1]"
SHARED_WINDOW = ENGINE + "test_a_long_window_is_shared_by_idle_workers_and_no_state_passes_an_unwritten_record"
RESYNC = ENGINE + "test_full_resync_marks_table_versions"
OLD_EVENTS = ENGINE + "test_events_bookmark_older_than_30_days_falls_back_to_a_full_read"
DELETIONS = ENGINE + "test_deletions_become_soft_delete_records"
CHILDREN = ENGINE + "test_children_follow_their_changed_parent"
REPORTS = "tests/test_reports.py::"
LOSS = "tests/test_engine_loss.py::"
SDK = "tests/test_sdk_capabilities.py::"
MODULES: dict[str, dict] = {
    "windows": {"file": "tap_stripe/engine/windows.py", "functions": ["*"],
                "unit": ["tests/test_windows.py"],
                "e2e": [BURST, BOOKMARK_SECOND, EMPTY_WINDOW, KILLED_RESUMED, SHARED_WINDOW]},
    "state": {"file": "tap_stripe/engine/state.py", "functions": ["*"],
              "unit": ["tests/test_state.py"],
              "e2e": [INCREMENTAL, BOOKMARK_SECOND, EMPTY_WINDOW, KILLED_RESUMED, RESYNC, OLD_EVENTS]},
    "events": {"file": "tap_stripe/engine/events.py",
               "functions": ["x_read_window__*", "x_newest_per_object__*", "x_event_key__*", "x_ends_object__*",
                             "x_apply_event__*", "x__apply_child_event__*", "x__object_now__*",
                             "x__removed_children__*", "x__listed__*"],
               "unit": ["tests/test_events.py"],
               "e2e": [INCREMENTAL, DELETIONS, CHILDREN, OLD_EVENTS]},
    "plan": {"file": "tap_stripe/engine/plan.py",
             "functions": ["xǁPlannerǁ*", "x__type_groups__*", "x__common_done__*"],
             "unit": ["tests/test_engine_bookmarks.py", "tests/test_plan.py"],
             "e2e": [INCREMENTAL, BOOKMARK_SECOND, EMPTY_WINDOW, KILLED_RESUMED, RESYNC, OLD_EVENTS, DELETIONS,
                     *(LOSS + t for t in (
                         "test_a_state_with_created_but_no_events_reads_events_from_its_created_bookmark",
                         "test_a_resync_left_unfinished_by_an_older_tap_then_leaving_full_resync_loses_nothing",
                         "test_the_30_day_guard_counts_from_stripes_clock_not_from_end_date"))]},
    "emission": {"file": "tap_stripe/engine/emission.py",
                 "functions": ["xǁEmissionǁemit_segment__*", "xǁEmissionǁwrite__*", "xǁEmissionǁadvance_bookmarks__*",
                               "xǁEmissionǁadvance_pending__*", "xǁEmissionǁrecord_done__*", "xǁEmissionǁfinish__*",
                               "xǁEmissionǁskip__*", "xǁEmissionǁmaybe_write_state__*", "xǁEmissionǁwrite_state__*",
                               "x__after__*", "x__merged__*"],
                 "unit": ["tests/test_engine_bookmarks.py", "tests/test_emission.py"],
                 "e2e": [INCREMENTAL, BOOKMARK_SECOND, EMPTY_WINDOW, BURST, KILLED_RESUMED, RESYNC, OLD_EVENTS,
                         LOSS
                         + "test_a_resync_left_unfinished_by_an_older_tap_then_leaving_full_resync_loses_nothing"]},
    "engine": {"file": "tap_stripe/engine/loop.py",
               "functions": ["xǁRunǁadvance__*", "xǁRunǁ_write_windows__*", "xǁRunǁ_complete__*",
                             "xǁRunǁskip_failed_children__*", "xǁRunǁ_stop_on_signal__*", "x__split_window__*"],
               "unit": ["tests/test_engine_bookmarks.py", "tests/test_engine_run.py"],
               "e2e": [INCREMENTAL, SHARED_WINDOW, BURST, KILLED_RESUMED, CHILDREN]},
    "fetch": {"file": "tap_stripe/engine/fetch.py",
              "functions": ["xǁFetcherǁ_list_window__*"],
              "unit": ["tests/test_fetch.py"],
              "e2e": [SHARED_WINDOW, BURST, KILLED_RESUMED, BOOKMARK_SECOND]},
    "batch": {"file": "tap_stripe/output/batch.py",
              "functions": ["xǁBatchWriterǁrecord__*", "xǁBatchWriterǁmessage__*", "xǁBatchWriterǁflush__*",
                            "xǁBatchWriterǁclose_all__*", "xǁBatchWriterǁ_close__*", "xǁBatchWriterǁ_release__*"],
              "unit": ["tests/test_batch.py"],
              "e2e": [SDK + "test_batch_writer_writes_state_only_after_the_files_it_covers",
                      SDK + "test_a_batch_file_that_cannot_be_written_stops_the_run_without_state"]},
    "tap": {"file": "tap_stripe/tap.py",
            "functions": ["xǁTapStripeǁload_state__*"],
            "unit": ["tests/test_load_state.py"],
            "e2e": ["tests/test_state.py::test_a_singer_io_state_is_continued_from_through_the_cli"]},
    "pagination": {"file": "tap_stripe/api/pagination.py", "functions": ["*"],
                   "unit": ["tests/test_client.py", "tests/test_pagination.py"],
                   "e2e": [INCREMENTAL, LOSS + "test_a_page_cursor_deleted_mid_run_goes_on_from_the_object_before_it"]},
    "scheduler": {"file": "tap_stripe/engine/scheduler.py",
                  "functions": ["xǁSchedulerǁsteal__*"],
                  "unit": ["tests/test_engine_bookmarks.py"],
                  "e2e": [SHARED_WINDOW, BURST, KILLED_RESUMED]},
    "reports": {"file": "tap_stripe/reports/plan.py",
                "functions": ["x_next_day_boundary__*", "x_day_boundaries__*", "x_plan_report__*", "x__plan_payouts__*",
                              "x__recheck_remembered__*", "x__choose_payouts__*", "x__pending_ids__*",
                              "x__get_payout__*", "x__created__*"],
                "unit": ["tests/test_report_intervals.py", "tests/test_report_payouts.py"],
                # in-process but each against a sandbox (seconds apiece), so stage 2 as well
                "e2e": [REPORTS + t for t in (
                    "test_newest_version_default_columns_and_exact_decimals", "test_pinned_version_and_columns",
                    "test_timezone_days_and_local_columns", "test_sync_interval",
                    "test_start_defaults_to_data_available_start", "test_incremental_next_day",
                    "test_report_streams_through_the_tap_are_incremental",
                    "test_a_failed_report_run_skips_the_stream_and_keeps_its_interval")]},
}

KILLED = {1, 3}  # pytest: tests failed / internal error (mutmut counts both as killed)

# Survivors that cannot be killed: the mutant behaves as the original. Each with a piece of
# its changed line, so that a renumbering (the function changed) is not taken for them.
EQUIVALENT = {
    "tap_stripe.engine.windows.x__cut__mutmut_11": (
        "min(pieces, hi + lo)",
        "with more pieces than seconds, lo + (hi - lo) * i // pieces takes every second anyway: same bounds"),
    "tap_stripe.engine.windows.x__geometric__mutmut_21": (
        "if bounds[-1] >= lo:", "when bounds[-1] == lo it sets bounds[-1] = lo: no change"),
    "tap_stripe.engine.state.x_validate__mutmut_118": (
        'ours.get("state_format", None)', "a missing format read as None passes `isinstance(fmt, int)` as 1 does"),
    "tap_stripe.engine.state.x_validate__mutmut_120": (
        'ours.get("state_format", )', "the same: a missing format is None, which is accepted like 1"),
    "tap_stripe.engine.state.x__seconds__mutmut_8": (
        'value.replace("XXZXX", "+00:00")',
        "Python 3.11's fromisoformat reads `Z` itself (on 3.10 the test with a `Z` time kills it)"),
    "tap_stripe.engine.state.x__seconds__mutmut_9": (
        'value.replace("z", "+00:00")', "the same: not replacing `Z` is harmless on Python >= 3.11"),
    **{f"tap_stripe.engine.plan.xǁPlannerǁplan_resync__mutmut_{n}": (
        'resync = ""', "`resync` is only tested for truth next: an empty string is as false as None")
       for n in (38, 52)},
    "tap_stripe.engine.scheduler.xǁSchedulerǁsteal__mutmut_6": (
        "lo is None and hi is None:",
        "a window segment always has both bounds: the None checks only narrow types for mypy"),
    "tap_stripe.engine.scheduler.xǁSchedulerǁsteal__mutmut_7": (
        "segment.closed and lo is None or hi is None", "the same: lo and hi are never None for a window"),
    "tap_stripe.engine.scheduler.xǁSchedulerǁsteal__mutmut_38": (
        "lo is None and reached is None or reached - lo < 2",
        "the same: the window was chosen with both set, and they are only ever raised, never cleared"),
    "tap_stripe.engine.plan.xǁPlannerǁplan_floors__mutmut_61": (
        "member.floor = None",
        "unreachable: Planner.family keeps a member only if it or one below it is selected, "
        "so `floors` is never empty"),
    "tap_stripe.engine.plan.xǁPlannerǁmember_events__mutmut_53": (
        "return min(created, )",
        "only selected members are asked, so `created` holds the member's own bookmark: never empty"),
    "tap_stripe.engine.plan.xǁPlannerǁplan__mutmut_13": (
        "break", "the family is the same for every account: none of the remaining accounts has one either"),
    "tap_stripe.engine.plan.xǁPlannerǁplan_feed__mutmut_83": (
        "lo <= feed.hi",
        "with lo == hi no window fits (and no done span), only listed_from becomes hi, which no event "
        "created before hi can fall in: the same as None"),
    **{f"tap_stripe.engine.events.{name}": (piece, "an event whose object has no `object` type is a child's event "
                                            "(or no one's) and never reaches this line")
       for name, piece in (("x__apply_child_event__mutmut_30", 'snapshot.get("object", None)'),
                           ("x__apply_child_event__mutmut_32", 'snapshot.get("object", )'),
                           ("x__apply_child_event__mutmut_35", 'snapshot.get("object", "XXXX")'),
                           ("x_apply_event__mutmut_94", 'snapshot.get("object", None)'),
                           ("x_apply_event__mutmut_96", 'snapshot.get("object", )'),
                           ("x_apply_event__mutmut_99", 'snapshot.get("object", "XXXX")'))},
    **{f"tap_stripe.engine.events.{name}": (piece, 'a field named "XXXX" is as absent as one named "": None either way')
       for name, piece in (("x__listed__mutmut_18", 'spec.created_field or "XXXX"'),
                           ("x__object_now__mutmut_26", 'embedded_field or "XXXX"'),
                           ("x_apply_event__mutmut_116", 'embedded_field or "XXXX"'))},
    "tap_stripe.engine.events.x__object_now__mutmut_27": (
        "if member.selected or before:",
        "an unselected member is in a family only for its selected children, and no child list that an "
        "object embeds has children: an unselected member never has `before` items"),
    "tap_stripe.engine.events.x__removed_children__mutmut_4": (
        "if not field and not member.selected or member.skipped:",
        "the same: an unselected member with an embedded field is never in a family; without a field "
        "nothing is gone"),
    "tap_stripe.engine.events.x_read_window__mutmut_27": (
        "segment.lo is not None or segment.hi is not None",
        "an events window is planned with both bounds: the assertion only narrows types"),
    "tap_stripe.engine.loop.xǁRunǁadvance__mutmut_43": (
        "break", "a report feed's report_plan is its only segment: nothing follows it in the loop"),
    "tap_stripe.engine.emission.xǁEmissionǁwrite_state__mutmut_18": (
        "self.state_dirty = None", "the flag is only tested for truth: None is as false as False"),
    "tap_stripe.engine.fetch.xǁFetcherǁ_list_window__mutmut_34": (
        'spec.created_field or "XXcreatedXX"', "every stream read in created-time windows has a created field"),
    "tap_stripe.engine.fetch.xǁFetcherǁ_list_window__mutmut_35": (
        'spec.created_field or "CREATED"', "the same: the default is never used"),
    "tap_stripe.engine.fetch.xǁFetcherǁ_list_window__mutmut_41": (
        "segment.lo is not None or segment.hi is not None",
        "a window is planned with both bounds: the assertion only narrows types"),
    "tap_stripe.output.batch.xǁBatchWriterǁ_close__mutmut_14": (
        'self._held = ""',
        "the writer is broken from here on, and a broken writer releases no held STATE, whatever is held"),
    "tap_stripe.api.pagination.x_list_pages__mutmut_8": (
        "{cursor} if (cursor) or True",
        "{None} instead of an empty set: a cursor is an object's id, never None"),
    **{f"tap_stripe.tap.xǁTapStripeǁload_state__mutmut_{n}": (
        piece, "the settings refuse connected_accounts next to account_id(s), so with one id it is never set")
       for n, piece in ((21, "self.config.get(None)"), (22, '"XXconnected_accountsXX"'),
                        (23, '"CONNECTED_ACCOUNTS"'))},
    "tap_stripe.reports.plan.x__choose_payouts__mutmut_15": (
        "stop = None",
        "a payout the data does not reach is created at or after its end, after every payout chosen: never "
        "in the second of one"),
    "tap_stripe.reports.plan.x__get_payout__mutmut_17": (
        "safe='XXXX'", "quote never escapes letters: the same path for every id"),
    "tap_stripe.reports.plan.x__plan_payouts__mutmut_57": (
        'p.get("id") or "XXXX"', "every payout Stripe lists has an id"),
    "tap_stripe.reports.plan.x__recheck_remembered__mutmut_56": (
        'p.get("id") or "XXXX"', "every payout Stripe returns has an id"),
}


def copy_tree(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(
        ".venv", ".git", "mutants", "__pycache__", ".pytest_cache", "*.egg-info", "demo-output"))


def write_config(work: Path, modules: list[str]) -> None:
    files = [MODULES[m]["file"] for m in modules]
    unit = sorted({t for m in modules for t in MODULES[m]["unit"] if (work / t).exists()})
    lines = ["[mutmut]", "source_paths=tap_stripe", "only_mutate="] + [f"    {f}" for f in files]
    lines += ["pytest_add_cli_args_test_selection="] + [f"    {t}" for t in unit]
    lines += ["also_copy=", "    stripe_sandbox"]  # the tests' Stripe; `mutants/` gets only what is listed
    lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", "use_git_change_detection=false"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def env_for(work: Path, mutant: str | None = None, subprocesses: bool = True) -> dict:
    """The environment of a test run; with `subprocesses`, a `python -m tap_stripe` started by
    a test imports the mutated tree, not the editable install. (Not for `mutmut run`: with
    PYTHONPATH set its stats run finds no test for any mutant.)"""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    if subprocesses:
        env["PYTHONPATH"] = str(work / "mutants")
    env.pop("MUTANT_UNDER_TEST", None)
    if mutant:
        env["MUTANT_UNDER_TEST"] = mutant
    return env


def mutmut_stage(work: Path, modules: list[str]) -> dict[str, str]:
    patterns = [f"{MODULES[m]['file'][:-3].replace('/', '.')}.{f}" for m in modules for f in MODULES[m]["functions"]]
    subprocess.run([MUTMUT, "run", "--max-children", "1", *patterns], cwd=work, env=env_for(work, subprocesses=False),
                   stdout=subprocess.DEVNULL)  # exits 1 when a mutant survives
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=work, env=env_for(work, subprocesses=False),
                         capture_output=True, text=True, check=True).stdout
    status = {}
    for line in out.splitlines():
        name, _, st = line.strip().rpartition(": ")
        if name and any(_match(name, p) for p in patterns):
            status[name] = st
    return status


def _match(name: str, pattern: str) -> bool:
    import fnmatch
    return fnmatch.fnmatchcase(name, pattern)


def mutant_change(work: Path, mutant: str) -> tuple[Path, int, str]:
    """The mutants/ file, the line of the original function that the mutant changes, and
    that line as the mutant has it."""
    module, _, name = mutant.rpartition(".")
    path = work / "mutants" / (module.replace(".", "/") + ".py")
    spans = json.loads(path.with_name(path.name + ".spans").read_text())["spans"]
    orig_name = name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    lines = path.read_text().splitlines()
    (o1, o2), (m1, m2) = spans[orig_name], spans[name]
    orig = lines[o1 - 1:o2]
    mut = [line.replace(name, orig_name) for line in lines[m1 - 1:m2]]  # the def line names the mutant
    first, new = next(((i1, j1) for tag, i1, _, j1, _ in
                       difflib.SequenceMatcher(a=orig, b=mut, autojunk=False).get_opcodes() if tag != "equal"),
                      (0, 0))
    return path, o1 + first, mut[new] if new < len(mut) else ""


def is_equivalent(work: Path, mutant: str) -> bool:
    return mutant in EQUIVALENT and EQUIVALENT[mutant][0] in mutant_change(work, mutant)[2]


def mutated_line(work: Path, mutant: str) -> tuple[str, int]:
    """(file in mutants/, line the mutant changes), moved to the first line of its innermost
    statement, which is what coverage records."""
    path, line, _ = mutant_change(work, mutant)
    best = None
    for node in ast.walk(_tree(path)):
        if (isinstance(node, ast.stmt) and node.lineno <= line <= (node.end_lineno or node.lineno)
                and (best is None or node.lineno >= best.lineno)):
            best = node
    return str(path.resolve()), best.lineno if best else line


_trees: dict[Path, ast.AST] = {}


def _tree(path: Path) -> ast.AST:
    if path not in _trees:
        _trees[path] = ast.parse(path.read_text())
    return _trees[path]


def e2e_coverage(work: Path, tests: list[str]) -> dict[str, tuple[float, set[tuple[str, int]]]]:
    """Per test: its duration and the (file, line) of tap_stripe it executes, subprocesses included."""
    from coverage import CoverageData

    cache = work / "e2e-coverage"
    cache.mkdir(exist_ok=True)
    saved = cache / "map.json"  # paths relative to `work`, so another copy of the same commit can reuse it
    seed = os.environ.get("MUTATION_COVERAGE_MAP")
    for source in ([saved] if saved.exists() else []) + ([Path(seed)] if seed else []):
        known = {t: (took, {(str(work / f), n) for f, n in lines})
                 for t, (took, lines) in json.loads(source.read_text()).items()}
        if set(tests) <= set(known):
            print(f"  coverage of the end-to-end tests from {source}", file=sys.stderr)
            return {t: known[t] for t in tests}
    rc = cache / ".coveragerc"
    rc.write_text(f"[run]\nparallel = true\npatch = subprocess\nsource = {work / 'mutants' / 'tap_stripe'}\n"
                  f"data_file = {cache / 'data'}\n")
    result = {}
    for i, test in enumerate(tests):
        for old in cache.glob("data*"):
            old.unlink()
        start = time.monotonic()
        proc = subprocess.run([PYTHON, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", "-q",
                               "-p", "no:cacheprovider", test], cwd=work / "mutants", env=env_for(work),
                              capture_output=True, text=True)
        took = time.monotonic() - start
        if proc.returncode != 0:
            print(f"  ! {test} fails (or no longer exists) without a mutant; left out", file=sys.stderr)
            continue
        lines: set[tuple[str, int]] = set()
        for f in cache.glob("data*"):
            data = CoverageData(basename=str(f))
            data.read()
            for measured in data.measured_files():
                lines.update((measured, n) for n in data.lines(measured) or ())
        result[test] = (took, lines)
        print(f"  coverage {i + 1}/{len(tests)} {took:5.1f}s {test}", file=sys.stderr)
    saved.write_text(json.dumps({t: (took, sorted((str(Path(f).relative_to(work)), n) for f, n in lines))
                                 for t, (took, lines) in result.items()}))
    return result


def module_of(mutant: str, modules: list[str]) -> str:
    return next(m for m in modules if mutant.startswith(MODULES[m]["file"][:-3].replace("/", ".") + "."))


def e2e_stage(work: Path, mutants: list[str], coverage: dict, modules: list[str],
              sample: int | None = None) -> dict[str, str]:
    """Run each mutant's covering end-to-end tests. With `sample`, only that many covered
    mutants per module (drawn at random, seed 0) are run; the others are `not run`."""
    status = {}
    by_speed = sorted(coverage, key=lambda t: coverage[t][0])
    plan = {}
    for mutant in mutants:
        where = mutated_line(work, mutant)
        module = module_of(mutant, modules)
        tests = [t for t in by_speed if t in MODULES[module]["e2e"] and where in coverage[t][1]]
        if tests:
            plan[mutant] = tests
        else:
            status[mutant] = "not covered"
    if sample is not None:
        import random
        rng = random.Random(0)
        chosen = set()
        for module in modules:
            covered = sorted(m for m in plan if module_of(m, modules) == module)
            chosen.update(rng.sample(covered, min(sample, len(covered))))
        for mutant in [m for m in plan if m not in chosen]:
            status[mutant] = "not run"
            del plan[mutant]
    for i, (mutant, tests) in enumerate(plan.items()):
        budget = 30 + 4 * sum(coverage[t][0] for t in tests)
        try:
            proc = subprocess.run([PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                  cwd=work / "mutants", env=env_for(work, mutant), capture_output=True,
                                  text=True, timeout=budget)
            status[mutant] = ("killed" if proc.returncode in KILLED else
                              "survived" if proc.returncode == 0 else f"suspicious (pytest exit {proc.returncode})")
        except subprocess.TimeoutExpired:
            status[mutant] = "timeout"
        print(f"  e2e {i + 1}/{len(plan)} {status[mutant]:<10} {mutant}", file=sys.stderr)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--no-e2e", action="store_true", help="stage 1 only")
    parser.add_argument("--keep", action="store_true", help="reuse the existing copy (do not copy the repo again)")
    parser.add_argument("--e2e-sample", type=int, metavar="N",
                        help="stage 2 on N random covered mutants per module only (an estimate, for slow runs)")
    args = parser.parse_args()
    args.modules = args.modules or list(MODULES)
    unknown = set(args.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown modules {sorted(unknown)}; known: {', '.join(MODULES)}")
    work = Path(os.environ.get("MUTATION_DIR", "/tmp/tap-stripe-mutation"))
    if not args.keep:
        copy_tree(work)
    write_config(work, args.modules)
    print(f"stage 1: mutmut run in {work}", file=sys.stderr)
    status = mutmut_stage(work, args.modules)
    stage1 = dict(status)
    left = [m for m, s in status.items() if s not in ("killed", "timeout")  # a hang fails CI too
            and not is_equivalent(work, m)]  # nothing can kill those: no need to try the slow tests
    if left and not args.no_e2e:
        tests = sorted({t for m in args.modules for t in MODULES[m]["e2e"]})
        print(f"stage 2: {len(left)} mutants left; measuring what {len(tests)} end-to-end tests execute",
              file=sys.stderr)
        status.update(e2e_stage(work, left, e2e_coverage(work, tests), args.modules, args.e2e_sample))
    (work / "mutation-results.json").write_text(json.dumps({"stage1": stage1, "final": status}, indent=1))
    survivors = sorted(n for n, s in status.items() if s not in ("killed", "timeout", "not run"))
    equivalent = {n for n in survivors if is_equivalent(work, n)}
    # score: detected (killed or timed out) of all mutants; score*: of the non-equivalent ones
    print(f"\n{'module':<9}{'mutants':>8}{'killed':>7}{'timeout':>8}{'survived':>9}{'no cover':>9}{'not run':>8}"
          f"{'other':>6}{'equiv':>6}{'score':>7}{'score*':>8}")
    for m in args.modules:
        prefix = MODULES[m]["file"][:-3].replace("/", ".") + "."
        counts = Counter(s for name, s in status.items() if name.startswith(prefix))
        total = sum(counts.values())
        detected = counts["killed"] + counts["timeout"]
        no_cover = counts["not covered"] + counts["no tests"]
        other = total - detected - counts["survived"] - no_cover - counts["not run"]
        equiv = sum(1 for n in equivalent if n.startswith(prefix))
        score = f"{100 * detected / total:.1f}%" if total else "-"
        score_ = f"{100 * detected / (total - equiv):.1f}%" if total > equiv else "-"
        print(f"{m:<9}{total:>8}{counts['killed']:>7}{counts['timeout']:>8}{counts['survived']:>9}{no_cover:>9}"
              f"{counts['not run']:>8}{other:>6}{equiv:>6}{score:>7}{score_:>8}")
    if equivalent:
        print("\nequivalent (the mutant behaves as the original):")
        for n in sorted(equivalent):
            print(f"  {n}: {EQUIVALENT[n][1]}")
    rc = 0
    unexplained = [n for n in survivors if n not in equivalent]
    if unexplained:
        rc = 1
        print(f"\nnot killed (`cd {work} && {MUTMUT} show NAME` shows the change):")
        for n in unexplained:
            print(f"  {status[n]:<12} {n}: {mutant_change(work, n)[2].strip()}")
    print(f"\nresults: {work / 'mutation-results.json'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
