"""Every table the tap reads, one class each (`class ChargesStream`): generated from Stripe's
spec (`generated.py`), with this project's choices and the report tables (`overrides.py`); the
kinds, their declarations and the `post_process` hook are in `base.py`.
"""

from __future__ import annotations

from tap_stripe.spec import StreamKind, StreamSpec
from tap_stripe.streams import generated, overrides
from tap_stripe.streams.base import StripeStream
from tap_stripe.streams.generated import API_VERSION, EXCLUDED_LISTS


def _classes(*modules) -> dict[str, type[StripeStream]]:
    """The classes of tables in `modules`, by table name; a later module's class replaces an earlier one's."""
    found: dict[str, type[StripeStream]] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, StripeStream) and value.__module__ == module.__name__ \
                    and hasattr(value, "spec"):
                found[value.spec.name] = value
    return found


STREAM_CLASSES: dict[str, type[StripeStream]] = _classes(generated, overrides)
SPECS: dict[str, StreamSpec] = {name: cls.spec for name, cls in STREAM_CLASSES.items()}
STREAMS: tuple[StreamSpec, ...] = tuple(spec for spec in SPECS.values() if spec.kind != StreamKind.REPORT)

__all__ = ["API_VERSION", "EXCLUDED_LISTS", "SPECS", "STREAMS", "STREAM_CLASSES", "StripeStream"]
