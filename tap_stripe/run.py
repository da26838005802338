"""One sync of the tap, wired: the client, Stripe's clock, the accounts, the selected streams'
SCHEMA messages and record paths (`tap_stripe.output`), schema evolution, and the engine's
run over them (`tap_stripe.engine.loop.Run`), with the run's summary at the end. The plugin
(`tap_stripe.tap.TapStripe`) calls `sync` and `collect`, and builds its client with `client`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, cast

import orjson
from singer_sdk import Stream

from tap_stripe import process
from tap_stripe.api import accounts
from tap_stripe.api.client import ClientOptions, ClientStats, Credentials, StripeClient, redact
from tap_stripe.api.ratelimit import RateLimiter, default_limits
from tap_stripe.catalog import read_catalog
from tap_stripe.engine.emission import Sinks
from tap_stripe.engine.loop import Run
from tap_stripe.engine.plan import Scope
from tap_stripe.engine.state import State
from tap_stripe.errors import AuthenticationFailed, FatalRunError, StateError, StripeError, Termination
from tap_stripe.output.emitter import Emitter, EvolvingOutput, message_dict, protected_schema
from tap_stripe.output.evolution import FieldPolicy, SchemaEvolution
from tap_stripe.output.metrics import MeteredSummary, http_request_metric
from tap_stripe.output.records import RecordShaper
from tap_stripe.output.summary import RunSummary
from tap_stripe.sensitive.protect import Protector
from tap_stripe.settings import Settings
from tap_stripe.spec import StreamKind, StreamSpec
from tap_stripe.streams.base import overrides_post_process

LOGGER = logging.getLogger("tap_stripe")

Render = Callable[[dict, str, int | None], bytes]


class Plugin(Protocol):
    """What a sync needs of the plugin (`tap_stripe.tap.TapStripe`)."""

    name: str
    mapper: Any
    message_writer: Any

    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def specs(self) -> dict[str, StreamSpec]: ...
    @property
    def stream_classes(self) -> Mapping[str, type]: ...
    @property
    def streams(self) -> Mapping[str, Stream]: ...
    @property
    def shapers(self) -> Mapping[str, RecordShaper]: ...
    @property
    def protector(self) -> Protector | None: ...
    @property
    def multi_account(self) -> bool: ...
    def client(self, credentials: Credentials | None = None) -> StripeClient: ...
    def selected_specs(self) -> list[StreamSpec]: ...


def client(settings: Settings, metrics_logger: logging.Logger, credentials: Credentials | None = None) -> StripeClient:
    """The run's client: the key's (or an account's) credentials, paced by the rate limits."""
    if credentials is None:
        credentials = accounts.credentials(settings)
    global_rate, endpoint_rate = default_limits(credentials.api_key)
    limiter = RateLimiter(settings.max_rps or global_rate, settings.max_rps_endpoint or endpoint_rate)
    options = ClientOptions(
        api_url=settings.api_url, api_version=settings.api_version, user_agent=settings.user_agent,
        connect_timeout=settings.connect_timeout, read_timeout=settings.request_timeout,
        max_retries=settings.max_retries, max_backoff_seconds=settings.max_backoff_seconds,
        ca_bundle=settings.ca_bundle)
    return StripeClient(credentials, options, limiter, stats=ClientStats(),
                        on_response=http_request_metric(metrics_logger))


def sync(tap: Plugin, state: dict, termination: Termination, only: str | None = None, sink: Any = None) -> None:
    """Run the engine over the selected streams (or only `only`), writing Singer messages (to
    `sink` when given: `collect`)."""
    settings = tap.settings
    writer = _writer(tap, sink)
    # Through the SDK's own stream sync (`collect`: its test harness), the SDK counts records.
    summary = MeteredSummary(settings.progress_interval, record_metrics=sink is None)
    selected: set[str] = set()
    client = tap.client()
    try:
        now, own_account = server_time(client)
        account_list = accounts.resolve(client, settings)
        selected = _readable(tap, {only} if only else {s.name for s in tap.selected_specs()}, summary)
        _write_schemas(tap, selected, writer, summary)
        # Records for the SDK's own stream sync (`collect`) get its maps and flattening there.
        emitters, render, evolution = _outputs(tap, selected, writer, summary, apply_maps=sink is None)
        scope = Scope(
            specs=tap.specs, selected=selected, accounts=account_list,
            platform_streams=accounts.platform_streams(settings),
            own_account=None if settings.oauth else own_account,
            hi=min(now, settings.end) if settings.end else now, now=now,
            bounded=settings.end is not None and settings.end < now,
            shapers=evolution.shapers(tap.shapers) if evolution else tap.shapers,
            admit=evolution.admit if evolution else None,
            # Through the SDK's own stream sync (`collect`), the SDK calls `post_process` itself.
            post_process=post_process_hooks(tap, selected) if sink is None else {})
        sinks = Sinks(emitters=emitters, render=render,
                      write_line=getattr(writer, "write_line", None), write_message=writer.message,
                      activate_versions=not tap.multi_account and only is None,
                      schema_change=evolution.announcement if evolution else None)
        run = Run(client=client, scope=scope, sinks=sinks, state=State(state), settings=settings,
                  summary=summary, termination=termination)
        process.collector_for_run()
        run.run()
        summary.outcome = "succeeded"
    except BaseException:
        summary.outcome = "failed"
        raise
    finally:
        writer.flush()
        summary.close_metrics(sorted(selected))
        summary.merge_client_stats(client.stats)
        print(summary.table(), file=sys.stderr)
        summary.write(settings.summary_file)


def post_process_hooks(tap: Plugin, selected: set[str]) -> dict[str, Callable[[dict, Any], dict | None]]:
    """The `post_process` of each selected stream whose class overrides the SDK's (bound to
    the stream), by name: looked up once per run, so a stream without one costs nothing."""
    return {name: tap.streams[name].post_process for name in sorted(selected)
            if overrides_post_process(type(tap.streams[name]))}


def _writer(tap: Plugin, sink: Any) -> Any:
    """Where the run writes: `sink`, or the tap's fast message writer, through BATCH files
    when `batch_config` is set (`tap_stripe.output.batch`, imported only then)."""
    batching = None
    if sink is None and tap.config.get("batch_config"):
        from tap_stripe.output.batch import BatchWriter, batch_config

        batching = batch_config(tap.config.get("batch_config"))
    writer: Any = sink or cast(Any, tap.message_writer).fast
    if batching is not None:  # every stream's records go to batch files
        writer = BatchWriter(writer, batching, tap.name)
    return writer


def _readable(tap: Plugin, selected: set[str], summary: RunSummary) -> set[str]:
    """The selected streams this run's credentials can read (OAuth tokens cannot read some)."""
    if not tap.settings.oauth:
        return selected
    unreadable = sorted(n for n in selected if not tap.specs[n].oauth_readable)
    if unreadable:
        LOGGER.info("OAuth tokens cannot read %s; leaving them out of this run.", ", ".join(unreadable))
        for name in unreadable:
            summary.skip(name, None, "not readable with OAuth")
    return selected - set(unreadable)


def _write_schemas(tap: Plugin, selected: set[str], writer: Any, summary: RunSummary) -> None:
    """Each selected stream's SCHEMA messages, as the SDK makes them, under the sensitive-data
    policies."""
    protector = tap.protector
    for name in sorted(selected):
        stream = tap.streams[name]
        for message in stream._generate_schema_messages():
            schema_message = message_dict(message)
            if protector:
                schema_message["schema"] = protected_schema(stream, protector, schema_message["schema"])
            writer.message(schema_message)
            summary.schema(name)


def _outputs(tap: Plugin, selected: set[str], writer: Any, summary: RunSummary,
             apply_maps: bool) -> tuple[dict[str, Emitter], dict[str, Render], SchemaEvolution | None]:
    """Each selected stream's record path (`Emitter`), the renderers of those whose records are
    finished in the worker that fetched them, and schema evolution (not with `apply_maps`
    false: the SDK's own stream sync)."""
    emitters = {name: Emitter(tap.streams[name], writer, tap.protector, apply_maps=apply_maps) for name in selected}
    render: dict[str, Render] = {name: e.render for name, e in emitters.items() if e.in_worker}
    evolution = None
    if apply_maps:
        output = EvolvingOutput(tap.streams, tap.mapper, tap.protector, writer, emitters, render)
        evolution = schema_evolution(tap, selected, output, summary)
    return emitters, render, evolution


def schema_evolution(tap: Plugin, selected: set[str], output: EvolvingOutput,
                     summary: RunSummary) -> SchemaEvolution | None:
    """Fields newer than the schemas (`tap_stripe.output.evolution`), for the selected streams
    (`schema_evolution`; always for a custom stream whose schema is inferred)."""
    evolving = {name for name in selected if tap.specs[name].kind != StreamKind.REPORT and (
        tap.settings.schema_evolution or getattr(tap.stream_classes[name], "schema_inferred", False))}
    if not evolving:
        return None
    protector = tap.protector
    policy = FieldPolicy(tap.config.get("sensitive_data"), tap.config.get("sensitive_hash_key"),
                         protector.policies if protector else None)
    return SchemaEvolution(evolving, lambda name: tap.shapers[name].known, output.rebuild, policy, summary.note)


def connection_test(client: StripeClient) -> str:
    """`--test`: one cheap authenticated request that says whether the key works (raises
    StripeError when it does not)."""
    try:
        client.get("/v1/balance", stream="--test")
    except StripeError as exc:
        if exc.status == 403:
            return ("tap-stripe: connection test passed: the key is valid but may not read the "
                    f"balance ({redact(str(exc))}).")
        raise
    return "tap-stripe: connection test passed: Stripe accepted the key."


def server_time(client: StripeClient) -> tuple[int, str | None]:
    """Stripe's clock (the `Date` header), so windows do not depend on this machine's clock,
    and the key's own account id (`GET /v1/account`), which its records name in `_account_id`
    (None when the key may not read it).

    The request also checks the key before any stream starts: a 401 stops the run here.
    Without Stripe's clock the run stops before reading anything: this machine's clock, if
    ahead of Stripe's by more than `lookback_seconds`, would move bookmarks past objects
    Stripe has not created yet, and they would never be read.
    """
    failure, own = "", None
    try:
        account = client.get("/v1/account", stream="").get("id")
        own = account if isinstance(account, str) and account.startswith("acct_") else None
    except AuthenticationFailed:
        raise
    except StripeError as exc:
        failure = str(exc)  # a key that may not read its account still gets a Date header
        LOGGER.info("The key may not read its own account (%s); its records' _account_id is null.",
                    redact(failure.splitlines()[0])[:200])
    try:
        return int(parsedate_to_datetime(client.last_response_date or "").timestamp()), own
    except (TypeError, ValueError):
        raise FatalRunError("could not read Stripe's clock (the Date header of GET /v1/account"
                            + (f": {failure}" if failure else "") + "); nothing was read, the state is "
                            "unchanged — run again when Stripe answers") from None


def read_json_file(handle: Any, what: str) -> dict | None:
    """The run's `--state` or `--catalog` file (an open handle, or None), as a dict: a
    catalog's entries kept as text until read (`catalog.read_catalog`)."""
    if handle is None:
        return None
    text = handle.read()
    if what == "catalog" and text.strip():  # each entry parsed when the run first reads it
        catalog = read_catalog(text.encode() if isinstance(text, str) else text)
        if catalog is not None:
            return catalog
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise StateError(f"the {what} file {getattr(handle, 'name', '')} is not valid JSON ({exc.msg}); "
                         f"fix or remove it") from None
    if not isinstance(value, dict):
        raise StateError(f"the {what} file {getattr(handle, 'name', '')} must hold a JSON object")
    if what == "catalog" and not isinstance(value.get("streams", []), list):
        raise StateError(f"the catalog file {getattr(handle, 'name', '')} must have a 'streams' list")
    return value


def collect(tap: Plugin, state: dict, termination: Termination, name: str) -> Iterable[dict]:
    """Records of one stream as dicts (for the SDK's test harness and --test)."""
    sink = CollectingWriter()
    sync(tap, state, termination, only=name, sink=sink)
    yield from (m["record"] for m in sink.messages if m.get("type") == "RECORD")


class CollectingWriter:
    """The messages of a `collect` sync, kept in memory."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def record(self, stream: str, record: dict, extracted: str, version: int | None = None) -> None:
        self.messages.append({"type": "RECORD", "stream": stream, "record": record})

    def message(self, message: dict) -> None:
        self.messages.append(message)

    def flush(self) -> None:
        pass
