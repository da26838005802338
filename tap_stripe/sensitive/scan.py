"""The `--scan-sensitive` scanner: samples records (`scan_first_pages`: the first page of each
selected top-level list), looks for values that *look* personal (emails, phones, IPs,
Luhn-valid card numbers) and says whether the classification covers the field they were found
in (`scan_records`, `scan_report`, `format_report`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tap_stripe.api.client import StripeClient
from tap_stripe.api.pagination import list_pages
from tap_stripe.errors import PermissionDenied, ProductNotSetUp
from tap_stripe.output.records import RecordShaper
from tap_stripe.sensitive.protect import mask_email, mask_ip, mask_phone
from tap_stripe.spec import StreamKind, StreamSpec

LOGGER = logging.getLogger("tap_stripe")

# Removed from text before detection, so they cannot look like phones or cards.
_NOISE = re.compile(
    r"https?://[^\s]*stripe\.com[^\s]*"  # Stripe URLs
    r"|\b[a-z][a-z0-9]{0,15}_[A-Za-z0-9_]{6,}\b"  # Stripe ids: ch_..., cus_..., pi_..._secret_...
    r"|\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # ISO dates
)
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# + and 8-15 digits (E.164, separators allowed), or a grouped national format like
# (415) 555-0142, 415-555-0142, 020 7946 0958. A bare run of digits (amounts, unix times,
# ids) is never a phone.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().-]{6,18}\d"
    r"|\(\d{2,5}\)[\s.-]?\d{2,4}[\s.-]?\d{2,5}"
    r"|\d{2,5}[\s.-]\d{2,4}[\s.-]\d{2,5})(?![\w])"
)
_CARD = re.compile(r"(?<![\w])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def detect(text: str) -> list[tuple[str, str]]:
    """[(kind, match)] of personal-looking values in a string: email, phone, ip, card."""
    found: list[tuple[str, str]] = [("email", m.group()) for m in _EMAIL.finditer(text)]
    text = _NOISE.sub(" ", _EMAIL.sub(" ", text))
    for m in _IPV4.finditer(text):
        if all(int(p) <= 255 for p in m.group().split(".")):
            found.append(("ip", m.group()))
    for m in _IPV6.finditer(text):
        try:
            if m.group().count(":") >= 2 and ipaddress.IPv6Address(m.group()) and any(c.isalnum() for c in m.group()):
                found.append(("ip", m.group()))
        except ValueError:
            pass
    text = _IPV6.sub(" ", _IPV4.sub(" ", text))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append(("card", m.group()))
    text = _CARD.sub(" ", text)
    for m in _PHONE.finditer(text):
        n = sum(c.isdigit() for c in m.group())
        if (8 if m.group().startswith("+") else 9) <= n <= 15:
            found.append(("phone", m.group().strip()))
    return found


def _strings(value: Any, path: str, parent_key: str | None) -> Iterable[tuple[str, str]]:
    if type(value) is str:
        yield path, value
    elif type(value) is dict:
        free_form = parent_key == "metadata"
        for k, v in value.items():
            yield from _strings(v, f"{path}.{'*' if free_form else k}" if path else k, k)
    elif type(value) is list:
        for v in value:
            yield from _strings(v, path + "[]", parent_key)


def _redact(kind: str, s: str) -> str:
    return {"email": mask_email, "phone": mask_phone, "ip": mask_ip}.get(kind, lambda v: "*" * len(v))(s)


def scan_records(
    stream: str,
    records: Iterable[Mapping],
    classification: Mapping[str, Mapping[str, str]],
    sample_size: int = 1000,
) -> list[dict]:
    """Findings for up to `sample_size` records of `stream`, one per (path, kind).

    `classification` is the `{stream: {path: category}}` map. A finding is
    `{"stream", "path", "kind", "count", "covered", "category", "example"}`; the example is masked.
    """
    known = classification.get(stream, {})
    rows: dict[tuple[str, str], dict] = {}
    for i, record in enumerate(records):
        if i >= sample_size:
            break
        for path, text in _strings(record, "", None):
            for kind, match in detect(text):
                row = rows.get((path, kind))
                if row is None:
                    category = known.get(path)
                    rows[(path, kind)] = row = {
                        "stream": stream, "path": path, "kind": kind, "count": 0,
                        "covered": category is not None, "category": category, "example": _redact(kind, match),
                    }
                row["count"] += 1
    return sorted(rows.values(), key=lambda r: (r["covered"], r["path"], r["kind"]))


def scan_report(findings_by_stream: Mapping[str, list[dict]]) -> dict:
    """`{"findings": [...uncovered first], "uncovered": n, "covered": n, "streams": [...]}`."""
    findings = [f for rows in findings_by_stream.values() for f in rows]
    findings.sort(key=lambda r: (r["covered"], r["stream"], r["path"], r["kind"]))
    return {
        "streams": sorted(findings_by_stream),
        "covered": sum(f["covered"] for f in findings),
        "uncovered": sum(not f["covered"] for f in findings),
        "findings": findings,
    }


def format_report(report: Mapping) -> str:
    """A plain-text table, uncovered fields first."""
    header = ("stream", "path", "kind", "count", "covered", "category", "example")
    rows = [header] + [
        (f["stream"], f["path"], f["kind"], str(f["count"]), "yes" if f["covered"] else "NO", f["category"] or "-",
         f["example"])
        for f in report["findings"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"{len(report['streams'])} stream(s) scanned; {report['uncovered']} uncovered and "
        f"{report['covered']} covered field(s) hold personal-looking values"
    )
    return "\n".join(lines)


def scan_first_pages(client: StripeClient, specs: Iterable[StreamSpec], expand: dict[str, list[str]],
                     schema_of: Callable[[str], dict], classification: Mapping[str, Mapping[str, str]]) -> dict:
    """Sample the first page of each top-level list of `specs` (as the run would read it, with
    `expand`, shaped with the stream's schema `schema_of(name)`) and scan it: `scan_report`."""
    findings = {}
    for spec in specs:
        if spec.parent or spec.kind != StreamKind.LIST:
            continue
        params = spec.list_query(expand)
        try:
            first = next(list_pages(client, spec.path, params, account=client.credentials.account_id,
                                    endpoint=spec.path, stream=spec.name, paginated=spec.paginated))
        except (PermissionDenied, ProductNotSetUp) as exc:
            LOGGER.warning("Not scanning %s: %s", spec.name, exc)
            continue
        shaper = RecordShaper(schema_of(spec.name), spec.created_field)
        records = [shaper.shape(obj, None) for obj in first.get("data") or []]
        findings[spec.name] = scan_records(spec.name, records, classification)
    return scan_report(findings)


def write_report(report: Mapping, path: str) -> None:
    """The report as JSON to `path`, and as a table (`format_report`) to stdout."""
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(format_report(report))
    print(f"JSON report written to {path}", file=sys.stderr)
