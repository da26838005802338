"""Sensitive data: a declarative, deterministic classification of every field, and its protection.

One mechanism, three uses, a module for each job:

1. **Classification** (`rules`, `classify`). `classify_schema` walks a stream's JSON Schema
   (nested objects, array items `[]`, free-form object values `*`, and the object member of
   expandable `anyOf` fields, whose path stays unchanged) and names each field's category with
   the reviewed rules of `rules`; nothing else decides. `write_classification` stores the
   result for all streams in `tap_stripe/sensitive_fields.json` (`{stream: {path: category}}`),
   which `tests/test_sensitive.py` keeps in sync with the schemas.
2. **Discovery** (`classify`). `catalog_metadata` turns a stream's classification into Singer
   metadata: `{"stripe-sensitive": <category>}` at each classified field's breadcrumb, and
   `{"stripe-sensitive-nested": [categories]}` on a top-level property that holds some.
3. **Protection in flight** (`protect`). The `sensitive_data` setting, compiled per stream
   into a `Protector` that rewrites schemas and records.

A separate scanner (`scan`, the `--scan-sensitive` option) samples records, looks for values
that *look* personal and says whether the classification covers the field they were found in.

The names below are the ones the rest of the tap uses; each is defined in its module.
"""

from __future__ import annotations

from tap_stripe.sensitive.classify import (
    CLASSIFICATION_FILE,
    catalog_metadata,
    classify_schema,
    load_classification,
    write_classification,
)
from tap_stripe.sensitive.protect import Protector, validate_policy
from tap_stripe.sensitive.rules import CATEGORIES, METADATA_KEY, NESTED_METADATA_KEY, POLICIES

__all__ = [
    "CATEGORIES",
    "CLASSIFICATION_FILE",
    "METADATA_KEY",
    "NESTED_METADATA_KEY",
    "POLICIES",
    "Protector",
    "catalog_metadata",
    "classify_schema",
    "load_classification",
    "validate_policy",
    "write_classification",
]
