"""TapStripe: the singer-sdk plugin — CLI, settings, catalog — around the tap's own engine.

The SDK provides the command line (`--about`, `--discover`, `--config`, `--catalog`,
`--state`), the catalog with its selection metadata, and stream maps. Syncing is the
engine's (`tap_stripe.engine`), because the SDK syncs one stream and one request at a time.
The engine hands each record back here, where the SDK's deselection and stream maps apply
exactly as in the SDK's own record path (guarded by a golden-output test).
"""

from __future__ import annotations

import gc

# Importing the SDK and what it imports makes some 80,000 objects that live as long as the
# process, and the garbage collector would walk them several times over while they are made
# (~40 ms of a run's start-up). It is paused while this module's imports run, then restored.
_GC_ENABLED = gc.isenabled()
gc.disable()

import copy
import dataclasses
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, cast

import click
import orjson
from singer_sdk import Stream, Tap, metrics
from singer_sdk.mapper import RemoveRecordTransform, SameRecordTransform
from singer_sdk.plugin_base import PluginBase
from singer_sdk.singerlib import Catalog, SchemaMessage

from tap_stripe import __version__, accounts, sensitive
from tap_stripe.catalog import (
    LazyCatalogEntry,
    ShapersOnDemand,
    StreamMapsOnDemand,
    StreamsOnDemand,
    align_entry,
    lean_catalog,
    read_catalog,
)
from tap_stripe.client import (
    AuthenticationFailed,
    ClientStats,
    Credentials,
    PermissionDenied,
    ProductNotSetUp,
    StripeClient,
    StripeError,
    redact,
)
from tap_stripe.engine import FatalRunError, Run, RunTerminated, Scope, Sinks, Termination
from tap_stripe.evolution import FieldPolicy, SchemaEvolution
from tap_stripe.pagination import list_pages
from tap_stripe.ratelimit import RateLimiter, default_limits
from tap_stripe.records import RecordShaper
from tap_stripe.sensitive.scan import format_report, scan_records, scan_report
from tap_stripe.settings import (
    CONFIG_SCHEMA,
    DEFAULT_FULL_RESYNC,
    ConfigError,
    Settings,
    custom_streams,
    several_accounts,
    validate,
)
from tap_stripe.spec import StreamSpec
from tap_stripe.state import State, StateError
from tap_stripe.state import adopt as adopt_state
from tap_stripe.state import validate as validate_state
from tap_stripe.streams import SPECS, STREAM_CLASSES, StripeStream, configured
from tap_stripe.streams.base import load_schema  # noqa: F401  (tests and tools import it from here)
from tap_stripe.summary import RunSummary
from tap_stripe.output.writer import SDKMessageWriter, record_line

if _GC_ENABLED:
    gc.enable()

LOGGER = logging.getLogger("tap_stripe")


class TapStripe(Tap):
    """Singer tap for Stripe: every table, resumable, concurrent."""

    name = "tap-stripe"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = SDKMessageWriter

    def __init__(self, *args: Any, validate_config: bool = True, catalog: Any = None,
                 config: Any = None, **kwargs: Any):
        self._stripe_state: dict = {}
        self._termination = Termination()
        # An input catalog (a dict or a Catalog) is kept as it came and read lazily, aligned with
        # the merged config (`input_catalog`): a run parses only the entries it uses.
        self._raw_catalog: Mapping[str, Any] | None = None
        if isinstance(catalog, Catalog):
            catalog = catalog.to_dict()
        if isinstance(catalog, Mapping):
            self._raw_catalog, catalog = catalog, None
        super().__init__(*args, validate_config=validate_config, catalog=catalog, config=config, **kwargs)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Replaces the SDK's JSON Schema pass with `settings.validate` (one line per problem,
        values never echoed). The SDK calls it once the environment is merged into the config
        and before any stream is built, so no stream sees a bad setting. Discovery
        (`raise_errors` false) checks the settings too when it has a key; without one it
        only lists the catalog."""
        if raise_errors or self.config.get("api_key"):
            _ = self.settings
        return []

    @property
    def input_catalog(self) -> Catalog | None:
        """The input catalog, aligned with this run's (merged) config (`tap_stripe.catalog`):
        each entry's schema and metadata are parsed when first read, so a run parses those
        of the streams it syncs and no others."""
        if self._input_catalog is None and self._raw_catalog is not None:
            self._input_catalog = lean_catalog(self._raw_catalog, self.config)
        return self._input_catalog

    def setup_mapper(self) -> None:
        """The SDK's mapper, with each stream's maps registered when the stream first asks for
        them (`stream.stream_maps`) rather than every catalog entry's up front. With
        `stream_maps` configured, every entry is registered up front as in the SDK, so that a
        bad map fails the run before it starts."""
        if self._input_catalog is not None and self._raw_catalog is None:  # given as a file path
            self._raw_catalog, self._input_catalog = self._input_catalog.to_dict(), None
        if self.input_catalog is None or self.config.get("stream_maps"):
            super().setup_mapper()
            return
        PluginBase.setup_mapper(self)
        self.mapper.stream_maps = StreamMapsOnDemand(self.mapper, self.input_catalog)

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, with `batch_config` offering only the encoding this tap
        writes (jsonl; parquet would need pyarrow, which is not installed, and is refused)."""
        super().append_builtin_config(config_jsonschema)
        batch = config_jsonschema.get("properties", {}).get("batch_config")
        fmt = (((batch or {}).get("properties") or {}).get("encoding") or {}).get("properties", {}).get("format")
        if fmt is not None and fmt.get("enum") != ["jsonl"]:
            batch = copy.deepcopy(batch)  # the SDK's own dict is shared by every plugin class
            batch["properties"]["encoding"]["properties"]["format"]["enum"] = ["jsonl"]
            config_jsonschema["properties"]["batch_config"] = batch

    @classmethod
    def get_plugin_version(cls) -> str:
        return __version__

    @cached_property
    def settings(self) -> Settings:
        specs = self.specs
        expandable = {spec.name: {f for f, _ in spec.expandable} | set(spec.default_expand) for spec in specs.values()}
        return validate(dict(self.config), set(specs), expandable, __version__)

    @cached_property
    def stream_classes(self) -> dict[str, type[StripeStream]]:
        """Every table's class: the built-in ones, and one per `custom_streams` entry."""
        entries = custom_streams(dict(self.config), STREAM_CLASSES)
        if not entries:
            return STREAM_CLASSES
        return {**STREAM_CLASSES, **configured.stream_classes(entries, SPECS)}

    @cached_property
    def specs(self) -> dict[str, StreamSpec]:
        """Every table's spec (`SPECS`, and the `custom_streams` setting's)."""
        classes = self.stream_classes
        return SPECS if classes is STREAM_CLASSES else {name: cls.spec for name, cls in classes.items()}

    @cached_property
    def classification(self) -> dict[str, dict[str, str]]:
        """The sensitive-data classification (`sensitive_fields.json`), with the `custom_streams`
        setting's streams: a known schema's fields are classified as its table's."""
        classification = sensitive.load_classification()
        if self.stream_classes is STREAM_CLASSES:
            return classification
        extra = {name: classification.get(getattr(cls, "schema_source", None) or "", {})
                 for name, cls in self.stream_classes.items() if name not in classification}
        return {**classification, **extra}

    @property
    def multi_account(self) -> bool:
        return several_accounts(self.config)

    @property
    def full_resync_streams(self) -> set[str]:
        return set(self.config.get("full_resync_streams", DEFAULT_FULL_RESYNC))

    def discover_streams(self) -> list[Stream]:
        return [cls(self) for cls in self.stream_classes.values()]

    @property
    def streams(self) -> Mapping[str, Stream]:  # type: ignore[override]
        """Every stream by name (sorted), each built when first read (`StreamsOnDemand`)."""
        if self._streams is None:
            self._streams = StreamsOnDemand(self)  # type: ignore[assignment]  # a lazy Mapping, not the SDK's dict
        return self._streams  # type: ignore[return-value]

    @cached_property
    def shapers(self) -> Mapping[str, RecordShaper]:
        """Each stream's `RecordShaper`, compiled when first used."""
        return ShapersOnDemand(self)

    @property
    def catalog_dict(self) -> dict:
        """The SDK's catalog, with each sensitive property marked by its category."""
        catalog = super().catalog_dict
        classification = self.classification
        for entry in catalog["streams"]:
            by_breadcrumb = {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"]}
            properties = entry["schema"].get("properties", {})
            for breadcrumb, extra in sensitive.catalog_metadata(classification.get(entry["tap_stream_id"], {})):
                if breadcrumb in by_breadcrumb:
                    by_breadcrumb[breadcrumb].update(extra)
                elif breadcrumb[1] in properties:  # a nested field (a report's unrequested column is not)
                    entry["metadata"].append({"breadcrumb": list(breadcrumb), "metadata": dict(extra)})
        return catalog

    @property
    def catalog_json_text(self) -> str:
        """The catalog as `--discover` prints it: the SDK's text exactly, faster (`catalog_text`)."""
        text = catalog_text(self.catalog_dict)
        return text if text is not None else super().catalog_json_text

    @cached_property
    def protector(self) -> sensitive.Protector | None:
        if not self.config.get("sensitive_data"):  # every field kept: no policy, no classification read
            sensitive.validate_policy({"sensitive_data": self.config.get("sensitive_data")})
            return None
        return sensitive.Protector.from_config(self.config.get("sensitive_data"),
                                               self.config.get("sensitive_hash_key"),
                                               self.classification)

    def load_state(self, state: dict[str, Any]) -> None:
        """Our state, or another Stripe tap's (singer-io's, an SDK tap's) continued from."""
        ids = self.config.get("account_ids") or ([self.config["account_id"]] if self.config.get("account_id") else [])
        account = ids[0] if len(ids) == 1 and not self.config.get("connected_accounts") else None
        state, note = adopt_state(state, set(self.specs), account)
        if note:
            LOGGER.info(note)
        self._stripe_state = validate_state(state)

    # ----- command line --------------------------------------------------------------

    @classmethod
    def invoke(cls, *, about: bool = False, about_format: str | None = None,  # type: ignore[override]
               config: Any = None, state: Any = None, catalog: Any = None) -> None:
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        try:
            state_dict = _read_json_file(state, "state")
            catalog_dict = _read_json_file(catalog, "catalog")
            tap = cls(config=config.config if config else {}, state=state_dict, catalog=catalog_dict,
                      parse_env_config=bool(config and config.parse_env))
            tap.sync()
        except (ConfigError, StateError, FatalRunError, StripeError) as exc:
            _fail(str(exc))
        except RunTerminated as exc:
            _fail(str(exc), code=128 + exc.signum)

    def _handle_termination(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT: ask the run to stop at its next safe point. The SDK's handler writes
        its own (empty) state and exits 0 from inside whatever line is being written; this
        one writes nothing itself, so no line is cut and the last STATE is the run's own."""
        self._termination.request(signum)

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        try:
            super().cb_discover(ctx, param, value)
        except ConfigError as exc:
            _fail(str(exc))

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: one cheap authenticated request that says whether the key works."""
        if value == "disabled":
            return
        config = ctx.params.get("config")
        try:
            tap = cls(config=config.config if config else {}, parse_env_config=bool(config and config.parse_env))
            if value == "schema":
                tap.write_schemas()
                ctx.exit()
            client = tap.client()
            try:
                client.get("/v1/balance", stream="--test")
                print("tap-stripe: connection test passed: Stripe accepted the key.", file=sys.stderr)
            except StripeError as exc:
                if exc.status == 403:
                    print("tap-stripe: connection test passed: the key is valid but may not read the "
                          f"balance ({redact(str(exc))}).", file=sys.stderr)
                else:
                    raise
        except (ConfigError, StripeError) as exc:
            _fail(f"connection test failed: {exc}")
        ctx.exit()

    @classmethod
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        command.params.append(click.Option(
            ["--scan-sensitive"], is_flag=False, flag_value="sensitive-scan.json", default=None,
            expose_value=False, callback=cls.cb_scan_sensitive,
            help="Sample the selected streams, report fields that hold personal-looking values "
                 "(and whether the classification covers them), and write the report as JSON "
                 "(default sensitive-scan.json)."))
        return command

    @classmethod
    def cb_scan_sensitive(cls, ctx: click.Context, param: click.Option, value: str | None) -> None:
        if not value:
            return
        config = ctx.params.get("config")
        catalog = ctx.params.get("catalog")
        try:
            tap = cls(config=config.config if config else {}, parse_env_config=bool(config and config.parse_env),
                      catalog=_read_json_file(catalog, "catalog"))
            report = tap.scan_sensitive()
        except (ConfigError, StateError, StripeError) as exc:
            _fail(f"sensitive-data scan failed: {exc}")
        with open(value, "w") as handle:
            json.dump(report, handle, indent=2)
        print(format_report(report))
        print(f"JSON report written to {value}", file=sys.stderr)
        ctx.exit()

    def scan_sensitive(self) -> dict:
        """Sample the first page of each selected top-level list and scan it."""
        client = self.client()
        classification = self.classification
        findings = {}
        for spec in self.selected_specs():
            if spec.parent or spec.kind != "list":
                continue
            params = spec.list_query(self.settings.expand)
            try:
                first = next(list_pages(client, spec.path, params, account=client.credentials.account_id,
                                        endpoint=spec.path, stream=spec.name, paginated=spec.paginated))
            except (PermissionDenied, ProductNotSetUp) as exc:
                LOGGER.warning("Not scanning %s: %s", spec.name, exc)
                continue
            shaper = RecordShaper(self.streams[spec.name].schema, spec.created_field)
            records = [shaper.shape(obj, None) for obj in first.get("data") or []]
            findings[spec.name] = scan_records(spec.name, records, classification)
        return scan_report(findings)

    # ----- sync ----------------------------------------------------------------------

    def client(self, credentials: Credentials | None = None) -> StripeClient:
        settings = self.settings
        if credentials is None:
            credentials = accounts.credentials(settings)
        global_rate, endpoint_rate = default_limits(credentials.api_key)
        limiter = RateLimiter(settings.max_rps or global_rate, settings.max_rps_endpoint or endpoint_rate)
        return StripeClient(
            credentials=credentials, api_url=settings.api_url, api_version=settings.api_version,
            user_agent=settings.user_agent, connect_timeout=settings.connect_timeout,
            read_timeout=settings.request_timeout, max_retries=settings.max_retries,
            max_backoff_seconds=settings.max_backoff_seconds, limiter=limiter,
            ca_bundle=settings.ca_bundle, stats=ClientStats(), on_response=http_request_metric(self.metrics_logger),
        )

    def selected_specs(self) -> list[StreamSpec]:
        """The selected streams' specs, read without building the streams that are not."""
        return [self.specs[name] for name in self.streams if self.is_selected(name)]

    def is_selected(self, name: str) -> bool:
        """`self.streams[name].selected`, without building the stream when it is not built yet:
        from the input catalog's entry (not in the catalog: not selected), or, without a
        catalog, the stream's `selected_by_default`."""
        streams = self.streams
        if isinstance(streams, StreamsOnDemand) and not streams.built(name):
            catalog = self.input_catalog
            if catalog is None:
                return bool(self.specs[name].selected_by_default)
            entry = catalog.get(name)
            if entry is None:
                return False
            if isinstance(entry, LazyCatalogEntry):
                return bool(entry.selected)
        return bool(streams[name].selected)

    def sync(self, only: str | None = None, sink: Any = None) -> None:
        """Run the engine over the selected streams (or only `only`), writing Singer messages."""
        settings = self.settings
        batching = None
        if sink is None and self.config.get("batch_config"):  # tap_stripe.output.batch only when batching
            from tap_stripe.output.batch import BatchWriter, batch_config

            batching = batch_config(self.config.get("batch_config"))
        # Through the SDK's own stream sync (`collect`: its test harness), the SDK counts records.
        summary = MeteredSummary(settings.progress_interval, record_metrics=sink is None)
        writer: Any = sink or cast(Any, self.message_writer).fast
        if batching is not None:  # every stream's records go to batch files (tap_stripe.output.batch)
            writer = BatchWriter(writer, batching, self.name)
        selected: set[str] = set()
        client = self.client()
        try:
            now = server_time(client)
            account_list = accounts.resolve(client, settings)
            selected = {only} if only else {s.name for s in self.selected_specs()}
            if settings.oauth:
                unreadable = sorted(n for n in selected if not self.specs[n].oauth_readable)
                if unreadable:
                    LOGGER.info("OAuth tokens cannot read %s; leaving them out of this run.", ", ".join(unreadable))
                    for name in unreadable:
                        summary.skip(name, None, "not readable with OAuth")
                    selected -= set(unreadable)
            for name in sorted(selected):
                for message in self.streams[name]._generate_schema_messages():
                    schema_message = message_dict(message)
                    if self.protector:
                        schema_message["schema"] = _protected_schema(self.streams[name], self.protector,
                                                                     schema_message["schema"])
                    writer.message(schema_message)
                    summary.schema(name)
            # Records for the SDK's own stream sync (`collect`) get its maps and flattening there.
            emitters = {name: Emitter(self.streams[name], writer, self.protector, apply_maps=sink is None)
                        for name in selected}
            render: dict[str, Callable[[dict, str, int | None], bytes]] = {
                name: e.render for name, e in emitters.items() if e.in_worker}
            evolution = self.schema_evolution(selected, EvolvingOutput(self, writer, emitters, render), summary) \
                if sink is None else None
            scope = Scope(
                specs=self.specs, selected=selected, accounts=account_list,
                platform_streams=accounts.platform_streams(settings),
                hi=min(now, settings.end) if settings.end else now, now=now,
                shapers=evolution.shapers(self.shapers) if evolution else self.shapers,
                admit=evolution.admit if evolution else None)
            sinks = Sinks(emitters=emitters, render=render,
                          write_line=getattr(writer, "write_line", None), write_message=writer.message,
                          activate_versions=not self.multi_account and only is None,
                          schema_change=evolution.announcement if evolution else None)
            run = Run(client=client, scope=scope, sinks=sinks, state=State(self._stripe_state), settings=settings,
                      summary=summary, termination=self._termination)
            # The catalog and schemas live for the whole run: take them out of the garbage
            # collector's sight, and collect young objects less often (records are short-lived
            # and acyclic), so collections do not keep re-walking them.
            # In the tap's own process (`cli`) the collector has been off since start-up, which
            # leaves next to no garbage (a few hundred objects): no collection first.
            if not _RUN_PROCESS["gc_paused"]:
                gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 20)
            if _RUN_PROCESS["gc_paused"]:
                _RUN_PROCESS["gc_paused"] = False
                gc.enable()
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

    def schema_evolution(self, selected: set[str], output: EvolvingOutput,
                         summary: RunSummary) -> SchemaEvolution | None:
        """Fields newer than the schemas (`tap_stripe.evolution`), for the selected streams
        (`schema_evolution`; always for a custom stream whose schema is inferred)."""
        evolving = {name for name in selected if self.specs[name].kind != "report" and (
            self.settings.schema_evolution or getattr(self.stream_classes[name], "schema_inferred", False))}
        if not evolving:
            return None
        protector = self.protector
        policy = FieldPolicy(self.config.get("sensitive_data"), self.config.get("sensitive_hash_key"),
                             protector.policies if protector else None)
        return SchemaEvolution(evolving, lambda name: self.shapers[name].known, output.rebuild, policy, summary.note)

    def collect(self, name: str) -> Iterable[dict]:
        """Records of one stream as dicts (for the SDK's test harness and --test)."""
        sink = _CollectingWriter()
        self.sync(only=name, sink=sink)
        yield from (m["record"] for m in sink.messages if m.get("type") == "RECORD")


def message_dict(message: Any) -> dict:
    """`message.to_dict()` (the SDK's: the message's fields, top-level nulls left out) without
    the deep copy `dataclasses.asdict` makes of every value: a SCHEMA's schema, which is only
    serialised, is not copied (~7 ms for a large stream's)."""
    return {f.name: value for f in dataclasses.fields(message) if (value := getattr(message, f.name)) is not None}


def _protected_schema(stream: Stream, protector: sensitive.Protector, schema: dict,
                      maps: list | None = None) -> dict:
    """The SCHEMA's schema under the sensitive-data policies. When the SDK flattens, the
    policies apply to the nested schema and the result is flattened (they name nested
    paths, `billing_details.email`, which a flattened schema no longer has)."""
    maps = stream.stream_maps if maps is None else maps
    if len(maps) == 1 and type(maps[0]) is SameRecordTransform and maps[0].flattening_enabled:
        return maps[0].flatten_schema(protector.schema(stream.name, maps[0].raw_schema))
    return protector.schema(stream.name, schema)


class EvolvingOutput:
    """Schema evolution's side in the tap (`tap_stripe.evolution`): a stream's output rebuilt
    for its schema with added fields — the SDK's stream maps (and flattener) registered anew,
    the emitter, its SCHEMA messages — and put in place of the old for the records after."""

    def __init__(self, tap: TapStripe, writer: Any, emitters: dict[str, Emitter],
                 render: dict[str, Callable[[dict, str, int | None], bytes]]):
        self.tap = tap
        self.writer = writer
        self.emitters = emitters
        self.render = render
        self.lock = threading.Lock()  # the SDK's mapper is shared by the streams

    def rebuild(self, name: str, properties: dict[str, dict]) -> list[dict]:
        """The SCHEMA messages of stream `name` with `properties` added (any thread; the
        evolution's lock of the stream is held, so rebuilds of one stream come in order)."""
        stream = self.tap.streams[name]
        primary = stream.stream_maps[0]  # registered from the catalog: the schema before any evolution
        schema = {**primary.raw_schema, "properties": {**primary.raw_schema.get("properties", {}), **properties}}
        with self.lock:
            self.tap.mapper.register_raw_stream_schema(name, schema, primary.raw_key_properties)
            maps = list(self.tap.mapper.stream_maps[name])
        emitter = Emitter(stream, self.writer, self.tap.protector, maps=maps)
        messages = schema_messages(stream, maps, self.tap.protector)
        self.emitters[name] = emitter
        if emitter.in_worker:
            self.render[name] = emitter.render
        return messages


def schema_messages(stream: Stream, maps: list, protector: sensitive.Protector | None) -> list[dict]:
    """The SCHEMA messages of `stream` through `maps`, as `Stream._generate_schema_messages`
    writes them (one per map that keeps records), under the sensitive-data policies."""
    bookmark_keys = [stream.replication_key] if stream.replication_key else None
    messages = []
    for stream_map in maps:
        if isinstance(stream_map, RemoveRecordTransform):
            continue
        message = SchemaMessage(stream_map.stream_alias, stream_map.transformed_schema,
                                stream_map.transformed_key_properties, bookmark_keys).to_dict()
        if protector:
            message["schema"] = _protected_schema(stream, protector, message["schema"], maps)
        messages.append(message)
    return messages


def http_request_metric(logger: logging.Logger) -> Callable[[str, str, str | None, int, float], None]:
    """The client's `on_response`: the SDK's `http_request_duration` METRIC for every response
    (every attempt, retries included, as the SDK's request loop does) to `singer_sdk.metrics`
    at INFO. Tags: stream, endpoint (the path template), http_status_code, status, and the
    connected account as context. Never a header, URL or query."""

    def log(stream: str, endpoint: str, account: str | None, status: int, seconds: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        tags: dict[str, Any] = {"stream": stream} if stream else {}
        tags.update({"endpoint": endpoint, "http_status_code": status,
                     "status": metrics.Status.SUCCEEDED if status < 400 else metrics.Status.FAILED})
        if account:
            tags["context"] = {"account_id": account}
        metrics.log(logger, metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, seconds, tags))

    return log


class MeteredSummary(RunSummary):
    """The run summary, also logging the SDK's `record_count` METRIC per stream (its
    `metrics.record_counter`: every 60 s while counting and once at the end) and one
    `sync_duration` per stream at the end. Records are counted where the engine counts them
    as written (`count`, main thread), under a lock."""

    def __init__(self, progress_interval: float = 10.0, record_metrics: bool = True):
        super().__init__(progress_interval)
        self.record_metrics = record_metrics
        self._counters: dict[str, metrics.Counter] = {}
        self._counters_lock = threading.Lock()

    def count(self, output: list[tuple[str, str, object, int]], skipped: set[str]) -> None:
        super().count(output, skipped)
        if not self.record_metrics:
            return
        with self._counters_lock:
            for name, _, _, n in output:
                if n and name not in skipped:
                    counter = self._counters.get(name)
                    if counter is None:
                        counter = self._counters[name] = metrics.record_counter(name).__enter__()
                    counter.increment(n)

    def close_metrics(self, streams: list[str]) -> None:
        """The last record_count of every stream (0 for one that wrote none) and its sync_duration:
        seconds from the run's start to its last record (to the end if it wrote none)."""
        if not self.record_metrics:
            return
        end = time.time()
        status = metrics.Status.SUCCEEDED if self.outcome == "succeeded" else metrics.Status.FAILED
        logger = metrics.get_metrics_logger()
        with self._counters_lock:
            for name in sorted(set(streams) | set(self._counters)):
                counter = self._counters.pop(name, None) or metrics.record_counter(name)
                counter.exit()
                stats = self.streams.get(name)
                finished = stats.finished if stats is not None and stats.finished else end
                metrics.log(logger, metrics.Point("timer", metrics.Metric.SYNC_DURATION,
                                                  round(finished - self.started, 6),
                                                  {"stream": name, "pid": os.getpid(), "status": status}))


class Emitter:
    """The SDK's record path for one stream: deselected fields, then stream maps (and the
    SDK's flattening), then write."""

    def __init__(self, stream: Stream, writer: Any, protector: sensitive.Protector | None = None,
                 apply_maps: bool = True, maps: list | None = None):
        self.stream = stream
        self.writer = writer
        self.protect = protector.record if protector and protector.policies(stream.name) else None
        self.mask = stream.mask
        self.prune = any(not selected for crumb, selected in self.mask.items() if crumb)
        maps = stream.stream_maps if maps is None else maps  # another schema's (schema evolution)
        # Without `apply_maps` the records go on as they are (to the SDK's own stream sync,
        # which applies the maps and flattening itself).
        same = not apply_maps or (len(maps) == 1 and type(maps[0]) is SameRecordTransform)
        # `flattening_enabled`: the SDK flattens in the map's transform (SameRecordTransform's
        # too), with the flattened schema its SCHEMA message carries (see `_flattener`).
        flattening = apply_maps and same and maps[0].flattening_enabled
        self.flatten = _flattener(maps[0]) if flattening else None
        self.identity = same and self.flatten is None
        self.maps = [(m, frozenset(m.transformed_schema["properties"]) if m.flattening_enabled else None)
                     for m in maps if not isinstance(m, RemoveRecordTransform)]
        self.name = stream.name
        # Without stream maps (whose evaluators are not thread-safe) a record can be finished
        # (and flattened) and serialised in the worker that fetched it.
        self.in_worker = same and hasattr(writer, "write_line")
        self.render: Callable[[dict, str, int | None], bytes] = self._render_plain
        if self.flatten is not None:
            self.render = self._render_flat
        elif not self.protect and not self.prune:  # nothing to finish: straight to the line
            name = self.name

            def render(record: dict, extracted: str, version: int | None) -> bytes:
                return record_line(name, record, extracted, version)

            self.render = render

    def _finish(self, record: dict) -> dict:
        """Sensitive-data policy, then the SDK's pruning of deselected fields."""
        if self.protect:
            self.protect(self.name, record)
        if self.prune:
            _pruned(record, self.mask, (), record)
        return record

    def _render_plain(self, record: dict, extracted: str, version: int | None) -> bytes:
        """The RECORD line for `record` (only when `in_worker`): `render` unless flattened."""
        return record_line(self.name, self._finish(record), extracted, version)

    def _render_flat(self, record: dict, extracted: str, version: int | None) -> bytes:
        assert self.flatten is not None
        return record_line(self.name, self.flatten(self._finish(record)), extracted, version)

    def __call__(self, record: dict, extracted: str, version: int | None) -> None:
        self._finish(record)
        if self.identity:
            self.writer.record(self.name, record, extracted, version)
            return
        if self.flatten is not None:
            self.writer.record(self.name, self.flatten(record), extracted, version)
            return
        for stream_map, flat_keys in self.maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                if flat_keys is not None:
                    mapped = _schema_keys(mapped, flat_keys)
                self.writer.record(stream_map.stream_alias, mapped, extracted, version)


def _flattener(stream_map: Any) -> Any:
    """The SDK's flattening of one record (`StreamMap.flatten_record`, a pure function of the
    record, so workers may call it), keeping the flattened SCHEMA's keys only. An SDK tap's
    conformance drops fields its schema lacks before flattening; without that, such a nested
    field (`lines.total_count`) would become a key no column matches. And the SDK's flattener
    writes `key: null` for a null object whose columns are `key__*`, a key its own SCHEMA does
    not have (those columns are null either way)."""
    flatten = stream_map.flatten_record
    keys = frozenset(stream_map.transformed_schema["properties"])

    def flat(record: dict) -> dict:
        return _schema_keys(flatten(record), keys)

    return flat


def _schema_keys(record: dict, keys: frozenset) -> dict:
    if record.keys() <= keys:
        return record
    return {k: v for k, v in record.items() if k in keys}


def _pruned(value: dict, mask: Any, breadcrumb: tuple, out: dict | None) -> dict | None:
    """The SDK's pruning of deselected properties (`pop_deselected_record_properties`),
    copy-on-write below the record: nested dicts a child record shares with its parent (its
    embedded list) are copied before a property is removed, never changed in place. Returns
    the changed copy of `value` (or `out`, `value` itself at the top level), None if unchanged."""
    for name, val in list(value.items()):
        crumb = (*breadcrumb, "properties", name)
        if not mask[crumb]:
            if out is None:
                out = dict(value)
            del out[name]
        elif type(val) is dict:
            new = _pruned(val, mask, crumb, None)
            if new is not None:
                if out is None:
                    out = dict(value)
                out[name] = new
    return out


class _CollectingWriter:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def record(self, stream: str, record: dict, extracted: str, version: int | None = None) -> None:
        self.messages.append({"type": "RECORD", "stream": stream, "record": record})

    def message(self, message: dict) -> None:
        self.messages.append(message)

    def flush(self) -> None:
        pass


def align_catalog(catalog: dict, config: Mapping[str, Any]) -> dict:
    """An input catalog (as a dict, changed in place) made to describe this run, whatever
    config it was discovered with (`tap_stripe.catalog.align_entry`)."""
    for entry in catalog.get("streams", []):
        align_entry(entry, config)
    return catalog


_NOT_ASCII = re.compile("[^\x00-\x7e]")


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float or not (kind is str or kind is int or kind is bool or item is None
                                   or isinstance(item, str)):  # a str enum (catalog metadata)
            return True  # a float, or anything else orjson and simplejson may write differently
    return False


def _ascii_escape(match: re.Match) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # a surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def catalog_text(catalog: dict) -> str | None:
    """Exactly the SDK's catalog text (`dump_json(catalog, indent=2)`: simplejson with
    `separators=(",", ":")`, ASCII only), written by orjson: simplejson indents in pure
    Python (~70 ms for this tap's catalog), orjson in ~5 ms. orjson's indented text differs
    only in a space after each key's colon, non-ASCII characters unescaped, and some floats
    (`1e-05`: `0.00001`); for a catalog where these cannot be told apart safely, None (the
    SDK's text then)."""
    if _has_float(catalog):
        return None
    try:
        text = orjson.dumps(catalog, option=orjson.OPT_INDENT_2).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. a Decimal, a key that is not a string, an integer beyond 64 bits
        return None
    if not text.isascii() or "\x7f" in text:
        text = _NOT_ASCII.sub(_ascii_escape, text.replace("\x7f", "\\u007f"))
    # After a key, `": ` becomes `":`. In JSON text `": ` is always a key's end, unless the
    # quote is a string's escaped one (`\"`).
    if '\\": ' in text:
        return None
    return text.replace('": ', '":')


def server_time(client: StripeClient) -> int:
    """Stripe's clock (the `Date` header), so windows do not depend on this machine's clock.

    The request also checks the key before any stream starts: a 401 stops the run here.
    Without Stripe's clock the run stops before reading anything: this machine's clock, if
    ahead of Stripe's by more than `lookback_seconds`, would move bookmarks past objects
    Stripe has not created yet, and they would never be read.
    """
    failure = ""
    try:
        client.get("/v1/balance", stream="")
    except AuthenticationFailed:
        raise
    except StripeError as exc:
        failure = str(exc)  # a key that may not read the balance still gets a Date header
    try:
        return int(parsedate_to_datetime(client.last_response_date or "").timestamp())
    except (TypeError, ValueError):
        raise FatalRunError("could not read Stripe's clock (the Date header of GET /v1/balance"
                            + (f": {failure}" if failure else "") + "); nothing was read, the state is "
                            "unchanged — run again when Stripe answers") from None


def _read_json_file(handle: Any, what: str) -> dict | None:
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


def _fail(message: str, code: int = 1) -> None:
    print(f"tap-stripe: error: {redact(message)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # worker threads may be mid-request; the state written so far is final


# Set by `cli`: this process is the tap's own run (not a library user's, e.g. a test's).
_RUN_PROCESS = {"gc_paused": False}


def cli() -> None:
    _fewer_malloc_arenas()
    # What start-up makes (modules, the catalog, settings, streams) lives until the process
    # ends: the collector stays off until the run starts (`sync` freezes what exists then and
    # turns it back on), so it never walks them. `--about` and `--discover` end without it.
    gc.freeze()
    gc.disable()
    _RUN_PROCESS["gc_paused"] = True
    TapStripe.cli()


def _fewer_malloc_arenas() -> None:
    """glibc gives each worker thread its own malloc arena and keeps freed memory in each;
    two arenas keep the process's memory near what it actually holds (-30% peak RSS)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
