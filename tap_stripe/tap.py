"""TapStripe: the singer-sdk plugin — CLI, settings, catalog — around the tap's own engine.

The SDK provides the command line (`--about`, `--discover`, `--config`, `--catalog`,
`--state`), the catalog with its selection metadata, and stream maps. Syncing is the
engine's (`tap_stripe.engine.loop`, wired in `tap_stripe.run`), because the SDK syncs one stream
and one request at a time. The engine hands each record to the tap's record path
(`tap_stripe.output.emitter`), where the SDK's deselection and stream maps apply exactly as in
the SDK's own record path (guarded by a golden-output test).
"""

from __future__ import annotations

# First: the garbage collector is paused while the imports below (the SDK's) run.
from tap_stripe import process

process.pause_collector_for_imports()

import copy
import logging
import sys
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

import click
from singer_sdk import Stream, Tap
from singer_sdk.plugin_base import PluginBase
from singer_sdk.singerlib import Catalog

from tap_stripe import __version__, run
from tap_stripe.api.client import Credentials, StripeClient, redact
from tap_stripe.catalog import catalog_text, lean_catalog
from tap_stripe.engine.state import adopt as adopt_state
from tap_stripe.engine.state import validate as validate_state
from tap_stripe.errors import ConfigError, FatalRunError, RunTerminated, StateError, StripeError, Termination
from tap_stripe.on_demand import ShapersOnDemand, StreamMapsOnDemand, StreamsOnDemand, is_selected
from tap_stripe.output.records import RecordShaper
from tap_stripe.output.writer import SDKMessageWriter
from tap_stripe.sensitive.classify import load_classification, mark_catalog, with_custom_streams
from tap_stripe.sensitive.protect import Protector, validate_policy
from tap_stripe.sensitive.scan import scan_first_pages, write_report
from tap_stripe.settings import CONFIG_SCHEMA, Settings, several_accounts, validate
from tap_stripe.spec import StreamSpec
from tap_stripe.streams import SPECS, STREAM_CLASSES, StripeStream, configured
from tap_stripe.streams.base import load_schema  # noqa: F401  (tests and tools import it from here)

process.resume_collector_after_imports()

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
        entries = configured.custom_streams(dict(self.config), STREAM_CLASSES)
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
        classification = load_classification()
        return classification if self.stream_classes is STREAM_CLASSES else \
            with_custom_streams(classification, self.stream_classes)

    @property
    def multi_account(self) -> bool:
        return several_accounts(self.config)

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
        return mark_catalog(super().catalog_dict, self.classification)

    @property
    def catalog_json_text(self) -> str:
        """The catalog as `--discover` prints it: the SDK's text exactly, faster (`catalog_text`)."""
        text = catalog_text(self.catalog_dict)
        return text if text is not None else super().catalog_json_text

    @cached_property
    def protector(self) -> Protector | None:
        if not self.config.get("sensitive_data"):  # every field kept: no policy, no classification read
            validate_policy({"sensitive_data": self.config.get("sensitive_data")})
            return None
        return Protector.from_config(self.config.get("sensitive_data"), self.config.get("sensitive_hash_key"),
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
            state_dict = run.read_json_file(state, "state")
            catalog_dict = run.read_json_file(catalog, "catalog")
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
            print(run.connection_test(tap.client()), file=sys.stderr)
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
                      catalog=run.read_json_file(catalog, "catalog"))
            report = scan_first_pages(tap.client(), tap.selected_specs(), tap.settings.expand,
                                      lambda name: tap.streams[name].schema, tap.classification)
        except (ConfigError, StateError, StripeError) as exc:
            _fail(f"sensitive-data scan failed: {exc}")
        write_report(report, value)
        ctx.exit()

    # ----- sync ----------------------------------------------------------------------

    def client(self, credentials: Credentials | None = None) -> StripeClient:
        return run.client(self.settings, self.metrics_logger, credentials)

    def selected_specs(self) -> list[StreamSpec]:
        """The selected streams' specs, read without building the streams that are not."""
        return [spec for spec in (self.specs[name] for name in self.streams)
                if is_selected(self.streams, spec, lambda: self.input_catalog)]

    def sync(self, only: str | None = None, sink: Any = None) -> None:
        """Run the engine over the selected streams (or only `only`), writing Singer messages
        (`tap_stripe.run`)."""
        run.sync(self, self._stripe_state, self._termination, only, sink)

    def collect(self, name: str) -> Iterable[dict]:
        """Records of one stream as dicts (for the SDK's test harness and --test)."""
        return run.collect(self, self._stripe_state, self._termination, name)


def _fail(message: str, code: int = 1) -> None:
    process.exit_now(redact(message), code)


def cli() -> None:
    """The `tap-stripe` command."""
    process.fewer_malloc_arenas()
    process.hold_collector_until_run()
    TapStripe.cli()
