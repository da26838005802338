"""The run summary and progress lines, checked against the sandbox's own request log."""

import json

from conftest import SANDBOX_NOW, catalog_for, tap_config


def test_summary_counts_match_the_sandbox_request_log(sandbox, run_tap, tmp_path):
    sandbox.add_fault("/v1/charges", "500", count=3)
    sandbox.add_fault("/v1/products", "429", count=2)
    summary_path = tmp_path / "summary.json"
    result = run_tap(tap_config(sandbox, summary_file=str(summary_path), max_workers=2),
                     catalog=catalog_for(["charges", "products", "invoices", "invoice_line_items"]))
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    streams = summary["streams"]
    log = sandbox.requests

    def requests_to(prefix):
        return sum(1 for r in log if r["path"] == prefix or r["path"].startswith(prefix + "/"))

    assert summary["outcome"] == "succeeded"
    assert streams["charges"]["requests"] == requests_to("/v1/charges")
    assert streams["products"]["requests"] == requests_to("/v1/products")
    assert streams["charges"]["retries"] == 3
    assert streams["products"]["throttled"] == 2 and streams["products"]["retries"] == 2
    assert streams["charges"]["new"] == len(result.records("charges")) == len(sandbox.truth("charges"))
    assert streams["invoice_line_items"]["new"] == len(result.records("invoice_line_items"))
    assert streams["charges"]["schemas"] == 1
    successful_charge_pages = sum(1 for r in log if r["path"] == "/v1/charges" and r["status"] == 200)
    assert streams["charges"]["pages"] == successful_charge_pages
    # The same table is printed on stderr.
    assert "stream" in result.stderr and "requests" in result.stderr and "run succeeded" in result.stderr


def test_summary_lists_skipped_streams_with_the_reason(sandbox, run_tap, tmp_path):
    sandbox.add_fault("/v1/issuing/*", "not_setup", product="Issuing")
    summary_path = tmp_path / "summary.json"
    run_tap(tap_config(sandbox, summary_file=str(summary_path)), catalog=catalog_for(["issuing_cards"]))
    streams = json.loads(summary_path.read_text())["streams"]
    assert streams["issuing_cards"]["skipped"] and "not set up" in streams["issuing_cards"]["skipped"][0]


def test_progress_lines_appear_on_a_slow_run(run_tap):
    from stripe_sandbox import Sandbox

    with Sandbox(seed=2, scale=0.05, now=SANDBOX_NOW, volumes={"charges": 10000}, latency_ms=50) as sandbox:
        result = run_tap(tap_config(sandbox, progress_interval_seconds=0.3, max_workers=2),
                         catalog=catalog_for(["charges", "products"]))
    assert result.returncode == 0
    progress = [line for line in result.stderr.splitlines() if "progress: charges" in line]
    assert progress, result.stderr[-1000:]
    assert "records/s" in progress[-1] and "of its time range" in progress[-1]
    assert "progress" not in result.stdout


def test_version_is_shown(run_tap):
    import subprocess
    import sys

    from tap_stripe import __version__

    out = subprocess.run([sys.executable, "-m", "tap_stripe", "--version"], capture_output=True, text=True)
    assert __version__ in out.stdout + out.stderr
    about = subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"],
                           capture_output=True, text=True)
    assert json.loads(about.stdout)["version"] == __version__
