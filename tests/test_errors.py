"""Fails safe: retries, clear errors, skipped streams, secrets and TLS — against sandbox faults."""

import http.server
import json
import ssl
import subprocess
import threading

import pytest

from conftest import (SANDBOX_NOW, TargetModel, catalog_for, comparable, expected_rows, parse_messages,
                      tap_config)

STREAMS = ["charges", "customers", "invoices", "invoice_line_items", "products", "refunds"]


def assert_complete(result, sandbox, streams=STREAMS):
    model = TargetModel().apply(result.messages)
    for stream in streams:
        expected = expected_rows(sandbox, stream)
        assert set(model.rows(stream)) == set(expected), stream


def assert_state_never_ahead(messages, sandbox, streams=STREAMS):
    """Every STATE's `created` cursor is only past objects already emitted before it."""
    from tap_stripe.tap import SPECS

    truth = {s: {o["id"]: o[SPECS[s].created_field] for o in sandbox.truth(s)}
             for s in streams if SPECS[s].replication_key}
    seen: set[tuple[str, str]] = set()
    checked = 0
    for message in messages:
        if message["type"] == "RECORD":
            seen.add((message["stream"], message["record"]["id"]))
        elif message["type"] == "STATE":
            for stream, created in truth.items():
                cursor = message["value"]["bookmarks"].get(stream, {}).get("accounts", {}).get("default", {}).get("created")
                if cursor is None:
                    continue
                checked += 1
                behind = [i for i, c in created.items() if c < cursor and (stream, i) not in seen]
                assert not behind, f"STATE moved {stream} to {cursor} before emitting {behind[:3]}"
    assert checked > 0, "no STATE carried a `created` cursor of the default account: nothing was checked"


@pytest.mark.parametrize("kind", ["500", "503", "reset", "truncated", "slow", "429"])
def test_each_fault_kind_at_a_steady_rate_loses_nothing(sandbox, run_tap, tmp_path, kind):
    sandbox.add_fault("/v1/*", kind, rate=0.25, delay=2.0)
    config = tap_config(sandbox, request_timeout=0.5, max_retries=12, summary_file=str(tmp_path / "summary.json"))
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


def test_mixed_faults_over_a_multi_stream_sync(sandbox, run_tap):
    for kind in ("500", "503", "reset", "truncated", "429"):
        sandbox.add_fault("/v1/*", kind, rate=0.06)
    result = run_tap(tap_config(sandbox, max_retries=15), catalog=catalog_for(STREAMS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert_complete(result, sandbox)
    assert_state_never_ahead(result.messages, sandbox)


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
        result = run_tap(config, catalog=catalog_for(STREAMS), env={"LOGLEVEL": "DEBUG", "TAP_STRIPE_LOGLEVEL": "DEBUG"})
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
