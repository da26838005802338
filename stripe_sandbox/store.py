"""Lazily generated, deterministic Stripe data plus an overlay of mutations.

Object i of a stream is a pure function of (seed, account, stream, i): a variant template
(pre-serialized bytes with holes) chosen by hash, with per-object holes (id, timestamps,
links, embedded child lists) filled in. created(i) is monotone in i, ids encode i.
"""

from __future__ import annotations

import random
import re
import threading
from typing import Any

import orjson

from . import schemas, templates
from .facts import CANCELED_ON_DELETE, DEFAULT_LIMIT, EMBEDDED_BY_DEFAULT, EVENT_RETENTION, STATUS_DEFAULT_EXCLUDE
from .fake import MISSING, PH, SKIP_TOP, conforms, gen, prefix_for, string_for
from .ids import make_id, mix, name_key, parse_id, random_token
from .resources import DELETED_TYPES
from .table import API_VERSION, load_table

__all__ = ["API_VERSION", "DELETED_TYPES", "EVENT_RETENTION", "SLOT_BITS", "NotFound", "Store", "Stream"]

DAY = 86400
SLOT_BITS = 12
MAX_SLOTS = 1 << SLOT_BITS
BASE_VOLUME = {"charges": 1000, "balance_transactions": 2000, "customers": 200, "invoices": 400, "subscriptions": 150,
               "payment_intents": 1000, "refunds": 100, "events": 500, "products": 30, "prices": 60, "payouts": 60,
               "invoice_items": 200, "disputes": 20, "payment_methods": 100, "setup_intents": 60, "transfers": 40}
DEFAULT_BASE = 20
ANCHORS = ("subscription", "parent.subscription_details.subscription", "invoice", "charge", "payment_intent")
# link fields resolved per object (time-local target); other expandable fields point to a fixed
# early object of the target stream chosen per variant (cheap: cached per account)
DYNAMIC_LINKS = {"customer", "invoice", "subscription", "charge", "payment_intent", "balance_transaction", "product",
                 "price", "payout", "plan", "setup_intent", "financial_account", "value_list"}
# Ids of sub-objects Stripe keeps for an object and names by their own id: (object type, field) ->
# (prefix, stream whose index the id encodes, how many SLOT_BITS up that index is). A Financial
# Connections account's `ownership` is the id of its `financial_connections.account_ownership`, and
# each of its owners (`/v1/financial_connections/accounts/{account}/owners?ownership=…`, where
# `ownership` is required) names that same ownership. Ownership data exists once the account holder
# granted the `ownership` permission, so the sandbox's accounts carry it.
OWNED_REFS = {("financial_connections.account", "ownership"): ("fcaowns_", "financial_connections_accounts", 0),
              ("financial_connections.account_owner", "ownership"): ("fcaowns_", "financial_connections_accounts",
                                                                       SLOT_BITS)}
_SENT = re.compile(rb'"@@PH(\d+)@@"')


class NotFound(Exception):
    pass


def _holder(obj: dict, path: str):
    """(the dict holding a dotted path's last field, that field); (None, field) when absent."""
    *head, last = path.split(".")
    for key in head:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return (obj if isinstance(obj, dict) else None), last


def _at(obj: dict, path: str):
    holder, last = _holder(obj, path)
    return holder.get(last) if holder is not None else None


class Variant:
    __slots__ = ("chunks", "fields", "phs", "status")

    def __init__(self, chunks, phs, fields, status):
        self.chunks = chunks        # len(phs)+1 byte strings
        self.phs = phs              # PH list
        self.fields = fields        # top-level field -> value (PH or plain) for filters/links
        self.status = status


class Stream:
    def __init__(self, store: Store, spec, schema: dict | None):
        self.spec = spec
        self.name = spec.name
        self.otype = spec.object_types[0] if spec.object_types else spec.name
        self.prefix = prefix_for(self.otype)
        self.salt = mix(store.seed * 1_000_003 ^ name_key(spec.name))
        self._schema = schema  # a given JSON schema (Store(schema_dir=…)); else the generated one
        self._props: dict | None = (schema or {}).get("properties") or {} if schema is not None else None
        self._type_variants: tuple | None = tuple((schema or {}).get("variants") or ()) if schema is not None else None
        # top-level fields of the objects (empty: unknown, anything goes)
        self.fields = frozenset(self._props) if self._props is not None else frozenset(getattr(spec, "fields", ()))
        self.created_field = spec.created_field
        self.is_child = spec.parent is not None
        self.parent: Stream | None = None
        self.children: list[Stream] = []
        self.links: dict[str, str] = {}
        self.variants: list[Variant] | None = None
        self.fsalt: dict = {}
        self.link_pfx: dict = {}
        self.link_salt: dict = {}
        self.lock = threading.Lock()
        self.status_default_exclude = STATUS_DEFAULT_EXCLUDE.get(self.otype, frozenset())

    @property
    def props(self) -> dict:
        """The objects' properties as a JSON-Schema-like dict (built on first use)."""
        if self._props is None:
            items = tuple(getattr(self.spec, "item_schemas", ()))
            self._props = schemas.object_schema(items)["properties"] if items else {}
        return self._props

    @property
    def type_variants(self) -> tuple:
        """The top-level sub-objects of which an object carries only the one its `type` names."""
        if self._type_variants is None:
            items = tuple(getattr(self.spec, "item_schemas", ()))
            self._type_variants = tuple(schemas.object_schema(items).get("variants") or ()) if items else ()
        return self._type_variants

    @property
    def example(self):
        """Stripe's example object of this table's type (when the schema is the generated one)."""
        return schemas.example(self.otype) if self._schema is None else None


class Store:
    def __init__(self, seed: int = 0, scale: float = 1.0, volumes: dict | None = None, accounts: int = 0,
                 history_days: float = 365, future_days: float = 0, now: int | None = None, table=None,
                 schema_dir=None, n_variants: int = 32):
        import time
        self.seed = int(seed)
        self.scale = scale
        self.volumes = dict(volumes or {})
        self.n_accounts = int(accounts)
        self.n_variants = n_variants
        self.t0 = int(now if now is not None else (int(time.time()) // DAY) * DAY)
        self.clock = self.t0
        self.start = self.t0 - int(history_days * DAY)
        self.span = max(1, int((history_days + future_days) * DAY))
        self.lock = threading.RLock()
        specs, schemas = load_table(table, schema_dir)
        self.streams: dict[str, Stream] = {}
        for sp in specs:
            self.streams[sp.name] = Stream(self, sp, schemas.get(sp.name))
        for st in self.streams.values():
            if st.is_child and st.spec.parent in self.streams:
                st.parent = self.streams[st.spec.parent]
                st.parent.children.append(st)
        by_type = {}
        for st in self.streams.values():
            for t in st.spec.object_types:
                by_type.setdefault(t, st.name)
        for st in self.streams.values():
            for fld, target in st.spec.expandable:
                tname = target if target in self.streams else by_type.get(target) or (
                    target + "s" if target and target + "s" in self.streams else None)
                if tname and not self.streams[tname].is_child and self.streams[tname].spec.kind == "list" \
                        and (not st.fields or fld.split(".", 1)[0] in st.fields):
                    st.links[fld] = tname
                    st.link_pfx[fld] = self.streams[tname].prefix
                    st.link_salt[fld] = self.streams[tname].salt
        # overlay: (account, stream) -> state
        self.objects: dict[tuple, dict[str, dict]] = {}      # id -> current dict (created or updated)
        self.deleted: dict[tuple, dict[str, int]] = {}      # id -> deleted at
        self.extra: dict[tuple, list] = {}                  # overlay-created top-level: [(created, idx, id)]
        self.child_extra: dict[tuple, dict[int, int]] = {}  # (acct, child) -> parent index -> extra slots
        self.next_extra: dict[tuple, int] = {}
        self.events: dict[int, list] = {}                   # account -> [(created, idx, id)]
        self.event_objs: dict[int, dict[str, dict]] = {}
        self.eventful = [s for s in self.streams.values()
                         if s.spec.event_types and not s.is_child and s.name not in ("events", "accounts")
                         and s.spec.kind == "list"]
        self._req = 0
        self._vol: dict = {}
        self._slink: dict = {}
        self._plans: dict = {}
        self._baked: dict = {}
        self._dcache: dict = {}
        self._idcache: dict = {}

    # ------------------------------------------------------------------ sizes / time
    def volume(self, acct: int, st: Stream) -> int:
        k = (acct, st.name)
        v = self._vol.get(k)
        if v is None:
            v = self._vol[k] = self._volume(acct, st)
        return v

    def _volume(self, acct: int, st: Stream) -> int:
        if st.name == "accounts":
            return self.n_accounts if acct == 0 else 0
        if st.name in self.volumes:
            return int(self.volumes[st.name])
        return max(1, round(BASE_VOLUME.get(st.name, DEFAULT_BASE) * self.scale))

    def created(self, acct: int, st: Stream, i: int) -> int:
        if st.is_child:
            return self.created(acct, st.parent, i >> SLOT_BITS)
        n = self.volume(acct, st)
        if i >= n:
            key = (acct, st.name)
            return self.objects[key][self._extra_id(acct, st, i)]["__created"]
        span = self.span
        if st.name == "events":  # base events live in the 30 days before t0 (+ future)
            span = min(span, EVENT_RETENTION - DAY + (self.span - (self.t0 - self.start)))
            return (self.t0 + (self.span - (self.t0 - self.start)) - span
                    + (i * span + mix(st.salt ^ acct ^ i) % span) // n)
        return self.start + (i * span + mix(st.salt ^ (acct << 40) ^ i) % span) // n

    def _extra_id(self, acct, st, i):
        return make_id(st.prefix, st.salt, acct, i)

    def oid(self, acct: int, st: Stream, i: int) -> str:
        return make_id(st.prefix, st.salt, acct, i)

    def gen_count_below(self, acct: int, st: Stream, n: int, key: tuple) -> int:
        """Number of generated indices i < n with (created(i), i) < key."""
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if (self.created(acct, st, mid), mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # ------------------------------------------------------------------ variants
    def _variants(self, st: Stream) -> list[Variant]:
        if st.variants is None:
            with st.lock:
                if st.variants is None:
                    st.variants = [self._build_variant(st, v) for v in range(self.n_variants)]
        return st.variants

    def _build_variant(self, st: Stream, v: int) -> Variant:
        rng = random.Random(hash((self.seed, st.salt, v)))
        props = st.props
        obj: dict[str, Any] = {}
        if props:
            ex = st.example
            whole = {"type": "object", "properties": props}
            if st.type_variants:
                whole["variants"] = list(st.type_variants)
            obj = gen(whole, st.name, rng, ex=MISSING if ex is None else ex)
        tpl = templates.TEMPLATES.get(st.otype)
        if tpl:
            for k, val in tpl(random.Random(hash((self.seed, st.salt, v, 1)))).items():
                if not props or (k in props and conforms(val, props[k])):
                    obj[k] = val
        if not props:
            obj.setdefault("livemode", False)
            obj.setdefault("metadata", {})
        for k in SKIP_TOP:
            obj.pop(k, None)
        obj["id"] = PH("id")
        if "object" in props or not props:
            obj["object"] = st.otype
        if "livemode" in obj:
            obj["livemode"] = False
        if st.created_field:
            obj[st.created_field] = PH("ts", 0)
        elif "created" in props:
            obj["created"] = PH("ts", 0)
        for fld in st.links:
            if "." in fld:  # an id inside a sub-object (an invoice's parent.subscription_details.subscription)
                holder, last = _holder(obj, fld)
                cur = holder.get(last) if holder is not None else None
                if cur is not None and (isinstance(cur, str) or (isinstance(cur, PH) and cur.kind == "link")):
                    holder[last] = PH("link", fld) if last in DYNAMIC_LINKS else PH("slink", (fld, v))
                continue
            cur = obj.get(fld)
            if cur is None and not (tpl and fld not in obj) and (fld in obj or props):
                obj[fld] = None
                continue
            if fld in DYNAMIC_LINKS or (tpl and isinstance(cur, PH)):
                obj[fld] = PH("link", fld)
            else:
                obj[fld] = PH("slink", (fld, v))
        for (otype, fld), ref in OWNED_REFS.items():
            if otype == st.otype and ref[1] in self.streams and (fld in props or not props):
                obj[fld] = PH("ref", ref)
                if otype == "financial_connections.account":
                    perms = ["ownership"] + [p for p in ("balances", "payment_method", "transactions")
                                             if rng.random() < 0.5]
                    if not props or conforms(perms, props.get("permissions", {})):
                        obj["permissions"] = perms
                    refresh = {"last_attempted_at": PH("ts", 60), "next_refresh_available_at": None,
                               "status": "succeeded"}
                    known = (props.get("ownership_refresh") or {}).get("properties")
                    if known:
                        refresh = {k: v for k, v in refresh.items() if k in known}
                    if not props or conforms(refresh, props.get("ownership_refresh", {})):
                        obj["ownership_refresh"] = refresh
        if st.parent is not None:
            for fld, tname in st.spec.expandable:
                if tname == st.parent.name or fld == st.spec.parent_param:
                    *path, last = fld.split(".")  # `owner.customer`: a field of a sub-object
                    holder = obj
                    for part in path:
                        holder = holder.get(part) if isinstance(holder, dict) else None
                    if isinstance(holder, dict):
                        holder[last] = PH("parent")
            if st.spec.parent_param and st.spec.parent_param != "id" and (st.spec.parent_param in props or not props):
                obj[st.spec.parent_param] = PH("parent")
        for ch in st.children:
            ef = ch.spec.embedded_field
            if ef and (ef in props or not props):
                if (st.otype, ef) in EMBEDDED_BY_DEFAULT:
                    obj[ef] = PH("children", ch.name)
                else:  # Stripe returns these lists only when expanded (App: `included_list`)
                    obj.pop(ef, None)
        # derived links: keep e.g. invoice.customer == invoice.subscription.customer
        for fld in list(st.links):
            if not (isinstance(obj.get(fld), PH) and obj[fld].kind == "link"):
                continue
            for anchor in ANCHORS:
                if anchor != fld and anchor in st.links and isinstance(_at(obj, anchor), PH) \
                        and _at(obj, anchor).kind == "link":
                    ta = self.streams[st.links[anchor]]
                    if ta.links.get(fld) == st.links[fld] and ta is not st:
                        obj[fld] = PH("dlink", (anchor, fld))
                        break
        for fld, val in list(obj.items()):  # template links to streams this table does not serve
            if isinstance(val, PH) and val.kind == "link" and val.arg is None:
                fake = string_for(fld, rng)
                obj[fld] = fake if not props or fld not in props or conforms(fake, props[fld]) else None
        phs: list[PH] = []

        def walk(x):
            if isinstance(x, PH):
                if x.kind == "link" and x.arg is None:
                    return None
                phs.append(x)
                return f"@@PH{len(phs) - 1}@@"
            if isinstance(x, dict):
                return {k: walk(val) for k, val in x.items()}
            if isinstance(x, list):
                return [walk(val) for val in x]
            return x

        # url holes need the field name
        def fix_urls(x, name=None):
            if isinstance(x, dict):
                for k, val in x.items():
                    if isinstance(val, PH) and val.kind == "url":
                        x[k] = PH("url", name)
                    else:
                        fix_urls(val, k)
            elif isinstance(x, list):
                for val in x:
                    fix_urls(val, name)
        fix_urls(obj)
        ser = orjson.dumps(walk(obj))
        parts = _SENT.split(ser)
        chunks = parts[0::2]
        order = [int(p) for p in parts[1::2]]
        return Variant(chunks, [phs[k] for k in order], obj, obj.get("status"))

    def variant_of(self, acct: int, st: Stream, i: int) -> Variant:
        vs = self._variants(st)
        return vs[mix(st.salt ^ (acct << 44) ^ i ^ 0xABCDEF) % len(vs)]

    # ------------------------------------------------------------------ links
    def _plan(self, acct, st, fld):
        k = (acct, st.name, fld)
        p = self._plans.get(k)
        if p is None:
            target = self.streams[st.links[fld]]
            nt = self.volume(acct, target)
            root, shift = st, 0
            while root.is_child:
                root = root.parent
                shift += SLOT_BITS
            ns = self.volume(acct, root)
            p = self._plans[k] = (nt, ns, (name_key(fld) ^ st.salt) ^ (acct << 40), nt // 25 + 1, shift,
                                  target.prefix, target.salt)
        return p

    def _base_link(self, acct, st, i, fld):
        nt, ns, fs, m, shift, _, _ = self._plans.get((acct, st.name, fld)) or self._plan(acct, st, fld)
        if nt <= 0:
            return None
        if shift:
            i >>= shift
        approx = (min(i, ns - 1) * nt) // ns if ns else 0
        if approx >= nt:
            approx = nt - 1
        r = mix(fs ^ i) % m
        return approx - r if approx > r else 0

    def _ph_link(self, acct, st, i, ph, depth=0):
        """Resolve a link placeholder of object i of st to a target index (or None)."""
        kind = ph.kind
        if kind == "link":
            return self._base_link(acct, st, i, ph.arg)
        if kind == "dlink":
            anchor, fld = ph.arg
            if depth < 4:
                ja = self._base_link(acct, st, i, anchor)
                if ja is not None:
                    ta = self.streams[st.links[anchor]]
                    ck = (acct, ta.name, ja, fld)
                    r = self._dcache.get(ck, -1)
                    if r == -1:
                        r = None
                        tph = self.variant_of(acct, ta, ja).fields.get(fld)
                        if isinstance(tph, PH) and tph.kind in ("link", "dlink", "slink"):
                            r = self._ph_link(acct, ta, ja, tph, depth + 1)
                        if len(self._dcache) > 300_000:
                            self._dcache.clear()
                        self._dcache[ck] = r
                    if r is not None:
                        return r
            return self._base_link(acct, st, i, fld)
        if kind == "slink":
            fld = ph.arg[0]
            nt = self.volume(acct, self.streams[st.links[fld]])
            return None if nt <= 0 else mix(st.salt ^ name_key(fld) ^ ph.arg[1]) % (nt // 20 + 1)
        return None

    def link_index(self, acct, st, i, fld, depth=0):
        """Index in st.links[fld] of object i's link, or None."""
        if i >= self.volume(acct, st) and not st.is_child:
            return None
        ph = _at(self.variant_of(acct, st, i).fields, fld)
        if not isinstance(ph, PH):
            return None
        return self._ph_link(acct, st, i, ph)

    def link_id(self, acct, st, i, fld):
        j = self.link_index(acct, st, i, fld)
        if j is None:
            return None
        return self.oid(acct, self.streams[st.links[fld]], j)

    # ------------------------------------------------------------------ children
    def n_children(self, acct, ch: Stream, pi: int) -> int:
        h = mix(ch.salt ^ (acct << 40) ^ pi ^ 0x77)
        r = h % 100
        if ch.otype in ("subscription_item",):
            base = 1 if r < 70 else 2 + (h >> 8) % 3
        elif r < 70:
            base = 1 + (h >> 8) % 3
        elif r < 93:
            base = 4 + (h >> 8) % 7
        else:
            base = 11 + (h >> 8) % 15
        extra = self.child_extra.get((acct, ch.name), {}).get(pi, 0)
        return base, base + extra

    def child_ids(self, acct, ch: Stream, pi: int) -> list[tuple[int, str]]:
        _base, total = self.n_children(acct, ch, pi)
        dele = self.deleted.get((acct, ch.name), {})
        out = []
        for s in range(total):
            idx = (pi << SLOT_BITS) | s
            oid = self.oid(acct, ch, idx)
            if oid not in dele:
                out.append((idx, oid))
        return out

    def _embedded(self, acct, ch: Stream, pi: int, parent_id: str, total_count: bool = True) -> bytes:
        """The first page of parent `pi`'s child list `ch` as the parent embeds it: the page its
        list endpoint returns at the default limit (10 items, in its order), `has_more`, `url`.
        `total_count`: a list a parent carries by default has one ("a lines property containing
        the total count of line items and the first handful of those items", spec: GET
        /v1/invoices/{invoice}/lines); an includable list (`includable_child`) is given in the
        shape of Stripe's spec for it, which has none."""
        kids = self.child_ids(acct, ch, pi)
        if not self.objects.get((acct, ch.name)) and not ch.children:
            c = self.created(acct, ch.parent, pi)
            data = b",".join(self.render_many(acct, ch, [(c, idx) for idx, _ in kids[:DEFAULT_LIMIT]]))
        else:
            data = b",".join(self.render(acct, ch, idx) for idx, _ in kids[:DEFAULT_LIMIT])
        count = b',"total_count":' + str(len(kids)).encode() if total_count else b""
        return b'{"object":"list","data":[' + data + b'],"has_more":' \
            + (b"true" if len(kids) > DEFAULT_LIMIT else b"false") + count \
            + b',"url":' + orjson.dumps(self.child_url(ch, parent_id)) + b"}"

    def includable_child(self, st: Stream, field: str) -> Stream | None:
        """The child stream whose list `st`'s objects return in `field` only when the request
        expands it (`expand[]=<field>` on a retrieve, `expand[]=data.<field>` on a list: a
        customer's `tax_ids`, facts.EMBEDDED_BY_DEFAULT); None for any other field."""
        if (st.otype, field) in EMBEDDED_BY_DEFAULT:
            return None
        for ch in st.children:
            if ch.spec.embedded_field == field and (field in st.props or not st.props):
                return ch
        return None

    def included_list(self, acct: int, st: Stream, ch: Stream, parent_id: str) -> bytes:
        """An includable child list of one parent, as its expansion returns it: the first 10
        items in the child list endpoint's order, `has_more` when there are more, and the
        endpoint's `url` (Stripe's spec gives such a list `data`, `has_more`, `object`, `url`)."""
        pi, _ = self.locate(acct, st, parent_id)
        return self._embedded(acct, ch, pi, parent_id, total_count=False)

    def child_url(self, ch: Stream, parent_id: str) -> str:
        if ch.spec.parent_via == "query":
            return f"{ch.spec.path}?{ch.spec.parent_param}={parent_id}"
        return re.sub(r"\{[^}]+\}", parent_id, ch.spec.path, count=1)

    # ------------------------------------------------------------------ render
    def _bake(self, acct, st, var):
        """Per-account copy of a variant with account-constant holes (static links) filled in."""
        chunks = [var.chunks[0]]
        phs = []
        for k, ph in enumerate(var.phs):
            if ph.kind == "slink":
                j = self._ph_link(acct, st, 0, ph)
                lid = None if j is None else self.oid(acct, self.streams[st.links[ph.arg[0]]], j)
                chunks[-1] += (b"null" if lid is None else b'"' + lid.encode() + b'"') + var.chunks[k + 1]
            else:
                phs.append(ph)
                chunks.append(var.chunks[k + 1])
        return Variant(chunks, phs, var.fields, var.status)

    def render_base(self, acct: int, st: Stream, i: int, created: int | None = None) -> bytes:
        if created is None:
            created = self.created(acct, st, i)
        return self.render_many(acct, st, [(created, i)])[0]

    def render_many(self, acct: int, st: Stream, pairs) -> list[bytes]:
        """Generated (overlay-free) bytes of objects [(created, index), ...] of one stream; the hot path."""
        vs = st.variants or self._variants(st)
        nv = len(vs)
        baked = self._baked
        idc = self._idcache
        plans = self._plans
        sname = st.name
        vsalt = st.salt ^ (acct << 44) ^ 0xABCDEF
        pfx, salt = st.prefix, st.salt
        results = []
        for created, i in pairs:
            vi = mix(vsalt ^ i) % nv
            var = baked.get((acct, sname, vi))
            if var is None:
                var = baked[(acct, sname, vi)] = self._bake(acct, st, vs[vi])
            oid = None
            chunks = var.chunks
            out = [chunks[0]]
            for k, ph in enumerate(var.phs, 1):
                kind = ph.kind
                if kind == "link":
                    fld = ph.arg
                    nt, ns, fs, m, shift, tpfx, tsalt = plans.get((acct, sname, fld)) or self._plan(acct, st, fld)
                    if nt <= 0:
                        out.append(b"null")
                    else:
                        ii = i >> shift if shift else i
                        approx = (min(ii, ns - 1) * nt) // ns if ns else 0
                        if approx >= nt:
                            approx = nt - 1
                        r = mix(fs ^ ii) % m
                        j = approx - r if approx > r else 0
                        ik = (tsalt, acct, j)
                        bb = idc.get(ik)
                        if bb is None:
                            if len(idc) > 300_000:
                                idc.clear()
                            bb = idc[ik] = b'"' + make_id(tpfx, tsalt, acct, j).encode() + b'"'
                        out.append(bb)
                elif kind == "ts":
                    out.append(str(created + ph.arg).encode())
                elif kind == "settle":
                    out.append(b'"pending"' if created + ph.arg > self.clock else b'"available"')
                elif kind == "id":
                    if oid is None:
                        oid = make_id(pfx, salt, acct, i)
                    out.append(b'"' + oid.encode() + b'"')
                elif kind == "dlink":
                    j = self._ph_link(acct, st, i, ph)
                    if j is None:
                        out.append(b"null")
                    else:
                        fld = ph.arg[1]
                        ik = (st.link_salt[fld], acct, j)
                        bb = idc.get(ik)
                        if bb is None:
                            if len(idc) > 300_000:
                                idc.clear()
                            bb = idc[ik] = b'"' + make_id(st.link_pfx[fld], st.link_salt[fld], acct, j).encode() + b'"'
                        out.append(bb)
                elif kind == "url":
                    if oid is None:
                        oid = make_id(pfx, salt, acct, i)
                    out.append(b'"' + st.spec.path.encode() + b"/" + oid.encode() + b"/" + ph.arg.encode() + b'"')
                elif kind == "parent":
                    out.append(b'"' + self.oid(acct, st.parent, i >> SLOT_BITS).encode() + b'"')
                elif kind == "ref":
                    prefix, owner, shift = ph.arg
                    salt2 = self.streams[owner].salt ^ name_key(prefix)
                    out.append(b'"' + make_id(prefix, salt2, acct, i >> shift).encode() + b'"')
                elif kind == "children":
                    if oid is None:
                        oid = make_id(pfx, salt, acct, i)
                    out.append(self._embedded(acct, self.streams[ph.arg], i, oid))
                else:
                    out.append(b"null")
                out.append(chunks[k])
            results.append(b"".join(out))
        return results

    def overlay_free(self, acct: int, st: Stream) -> bool:
        """True when no mutation touched this stream or its children (render_many is exact)."""
        if self.objects.get((acct, st.name)):
            return False
        for ch in st.children:
            k = (acct, ch.name)
            if self.objects.get(k) or self.deleted.get(k) or self.child_extra.get(k):
                return False
        return True

    def render(self, acct: int, st: Stream, i: int, created: int | None = None) -> bytes:
        key = (acct, st.name)
        ov = self.objects.get(key)
        d = ov.get(self.oid(acct, st, i)) if ov else None
        if d is not None or (st.children and any(self._child_dirty(acct, ch, i) for ch in st.children)):
            oid = self.oid(acct, st, i)
            if d is None:
                d = orjson.loads(self.render_base(acct, st, i))
            else:
                d = {k: v for k, v in d.items() if not k.startswith("__")}
            for ch in st.children:
                if ch.spec.embedded_field and ch.spec.embedded_field in d and \
                        (st.otype, ch.spec.embedded_field) in EMBEDDED_BY_DEFAULT:
                    d[ch.spec.embedded_field] = orjson.Fragment(self._embedded(acct, ch, i, oid))
            return orjson.dumps(d)
        return self.render_base(acct, st, i, created)

    def _child_dirty(self, acct, ch, pi):
        if pi in self.child_extra.get((acct, ch.name), {}):
            return True
        key = (acct, ch.name)
        if self.objects.get(key) or self.deleted.get(key):
            pre = (pi << SLOT_BITS)
            for oid in list(self.objects.get(key, {})) + list(self.deleted.get(key, {})):
                p = parse_id(ch.prefix, ch.salt, oid)
                if p and (p[1] >> SLOT_BITS) == pi:
                    return True
            del pre
        return False

    def obj_dict(self, acct, st, i) -> dict:
        return orjson.loads(self.render(acct, st, i))

    # ------------------------------------------------------------------ lookup
    def locate(self, acct: int, st: Stream, oid: str):
        """Index of a visible object; raises NotFound. Returns (index, deleted_at or None)."""
        p = parse_id(st.prefix, st.salt, oid)
        if p is None or p[0] != acct:
            raise NotFound(oid)
        i = p[1]
        key = (acct, st.name)
        if st.is_child:
            pi = i >> SLOT_BITS
            slot = i & (MAX_SLOTS - 1)
            if slot >= self.n_children(acct, st, pi)[1]:
                raise NotFound(oid)
            self.locate(acct, st.parent, self.oid(acct, st.parent, pi))
        else:
            n = self.volume(acct, st)
            if i >= n and oid not in self.objects.get(key, {}) and oid not in self.deleted.get(key, {}):
                raise NotFound(oid)
            if self.created(acct, st, i) > self.clock:
                raise NotFound(oid)
        return i, self.deleted.get(key, {}).get(oid)

    def cursor_key(self, acct, st, oid):
        p = parse_id(st.prefix, st.salt, oid)
        if p is None or p[0] != acct:
            raise NotFound(oid)
        i = p[1]
        if i >= self.volume(acct, st) and oid not in self.objects.get((acct, st.name), {}):
            raise NotFound(oid)
        return (self.created(acct, st, i), i)

    # ------------------------------------------------------------------ listing
    def iter_desc(self, acct, st: Stream, lo_key, hi_key, pred=None):
        """Yield (key, index) for visible objects with lo_key <= key < hi_key, newest first."""
        n = self.volume(acct, st)
        k = (acct, st.name)
        dele = self.deleted.get(k)
        extras = [e for e in self.extra.get(k, ()) if lo_key <= (e[0], e[1]) < hi_key]
        extras.sort(reverse=True)
        ei = 0
        hi = self.gen_count_below(acct, st, n, hi_key)
        lo = self.gen_count_below(acct, st, n, lo_key)
        i = hi - 1
        while True:
            gk = (self.created(acct, st, i), i) if i >= lo else None
            ek = (extras[ei][0], extras[ei][1]) if ei < len(extras) else None
            if gk is None and ek is None:
                return
            if ek is not None and (gk is None or ek > gk):
                ei += 1
                idx, oid = ek[1], extras[ei - 1][2]
                cur = ek
            else:
                i -= 1
                idx, cur = gk[1], gk
                oid = None
            if dele:
                oid = oid or self.oid(acct, st, idx)
                if oid in dele:
                    continue
            if pred is not None and not pred(idx):
                continue
            yield cur, idx

    def iter_asc(self, acct, st, lo_key, hi_key, pred=None):
        n = self.volume(acct, st)
        k = (acct, st.name)
        dele = self.deleted.get(k)
        extras = sorted(e for e in self.extra.get(k, ()) if lo_key <= (e[0], e[1]) < hi_key)
        ei = 0
        i = self.gen_count_below(acct, st, n, lo_key)
        hi = self.gen_count_below(acct, st, n, hi_key)
        while True:
            gk = (self.created(acct, st, i), i) if i < hi else None
            ek = (extras[ei][0], extras[ei][1]) if ei < len(extras) else None
            if gk is None and ek is None:
                return
            if ek is not None and (gk is None or ek < gk):
                ei += 1
                cur = ek
            else:
                i += 1
                cur = gk
            if dele and self.oid(acct, st, cur[1]) in dele:
                continue
            if pred is not None and not pred(cur[1]):
                continue
            yield cur, cur[1]

    def visible_hi(self, st) -> tuple:
        return (self.clock + 1, -1)

    def visible_lo(self, st) -> tuple:
        if st.name == "events":
            return (self.clock - EVENT_RETENTION, -1)
        return (-(1 << 62), -1)

    # ------------------------------------------------------------------ field values for filters
    def field_value(self, acct, st, i, fld):
        oid = self.oid(acct, st, i)
        d = self.objects.get((acct, st.name), {}).get(oid)
        if d is not None:
            v = d.get(fld)
            return v.get("id") if isinstance(v, dict) else v
        var = self.variant_of(acct, st, i)
        v = var.fields.get(fld)
        if isinstance(v, PH):
            if v.kind in ("link", "dlink", "slink"):
                return self.link_id(acct, st, i, fld)
            if v.kind == "parent":
                return self.oid(acct, st.parent, i >> SLOT_BITS)
            return orjson.loads(self.render(acct, st, i)).get(fld)
        return v

    # ------------------------------------------------------------------ events (generated)
    def event_count(self, acct):
        return self.volume(acct, self.streams["events"]) if "events" in self.streams else 0

    def gen_event_parts(self, acct, i):
        """(stream, object index, type) for generated event i, or None."""
        if not self.eventful:
            return None
        ev = self.streams["events"]
        h = mix(ev.salt ^ (acct << 40) ^ i ^ 0x55)
        cands = [s for s in self.eventful if self.volume(acct, s) > 0]
        if not cands:
            return None
        st = cands[h % len(cands)]
        # The history's objects all exist: none of its events says one was deleted (a
        # `*.deleted` event of an object Stripe returns as deleted means it is gone).
        types = [t for t in st.spec.event_types if not (t.endswith(".deleted") and st.otype in DELETED_TYPES)] \
            or st.spec.event_types
        t = types[(h >> 16) % len(types)]
        c = self.created(acct, ev, i)
        n = self.volume(acct, st)
        j = self.gen_count_below(acct, st, n, (c + 1, -1)) - 1 - (h >> 32) % 3
        if j < 0:
            j = 0 if n else None
        if j is None or self.created(acct, st, j) > c:
            return None
        return st, j, t

    def render_event(self, acct, i) -> bytes:
        ev = self.streams["events"]
        if i >= self.volume(acct, ev):
            return orjson.dumps({k: v for k, v in self.objects[(acct, "events")][self.oid(acct, ev, i)].items()
                                 if not k.startswith("__")})
        c = self.created(acct, ev, i)
        parts = self.gen_event_parts(acct, i)
        oid = self.oid(acct, ev, i)
        if parts is None:
            st, obj, t = None, b"{}", "balance.available"
        else:
            st, j, t = parts
            obj = self.render_base(acct, st, j)
        prev = b',"previous_attributes":{"metadata":{}}' if t.endswith(".updated") else b""
        acc = b'"account":"' + self.account_id(acct).encode() + b'",' if acct else b""
        return (b'{"id":"' + oid.encode() + b'","object":"event",' + acc + b'"api_version":"' + API_VERSION.encode()
                + b'","created":' + str(c).encode() + b',"data":{"object":' + obj + prev
                + b'},"livemode":false,"pending_webhooks":0,"request":{"id":null,"idempotency_key":null},"type":"'
                + t.encode() + b'"}')

    def event_type(self, acct, i):
        ev = self.streams["events"]
        if i >= self.volume(acct, ev):
            return self.objects[(acct, "events")][self.oid(acct, ev, i)]["type"]
        p = self.gen_event_parts(acct, i)
        return p[2] if p else "balance.available"

    # ------------------------------------------------------------------ accounts
    def account_id(self, acct: int) -> str:
        if acct == 0:
            return "acct_" + random_token(self.seed ^ 0xACC7, 16)
        return self.oid(0, self.streams["accounts"], acct - 1)

    def own_account(self, acct: int) -> dict:
        """`GET /v1/account`: the account a request acts for (the key's own, or the one its
        Stripe-Account header names), as Stripe retrieves it."""
        st = self.streams["accounts"]
        if acct:
            return orjson.loads(self.render(0, st, acct - 1))
        own = orjson.loads(self.render_base(0, st, 0, created=self.start))
        own.update(id=self.account_id(0), type="standard", controller={"type": "account"})
        return own

    def account_number(self, account: int | str | None) -> int:
        """An account given as an index (0 = the platform) or an `acct_…` id, as an index."""
        if isinstance(account, str):
            index = self.account_index(account)
            if index is None:
                raise KeyError(f"unknown account {account}")
            return index
        return int(account or 0)

    def account_index(self, header: str) -> int | None:
        if "accounts" not in self.streams:
            return None
        st = self.streams["accounts"]
        p = parse_id(st.prefix, st.salt, header)
        if p is None or p[0] != 0 or p[1] >= self.n_accounts:
            return None
        return p[1] + 1

    # ------------------------------------------------------------------ mutations
    def _snapshot(self, acct, st, i) -> dict:
        return orjson.loads(self.render(acct, st, i))

    def _event(self, acct, etype, obj: dict, prev: dict | None, at: int):
        """Record an event of type `etype` (none when it is None: a change Stripe sends no event
        of, such as a balance transaction's creation)."""
        if etype is None or "events" not in self.streams:
            return None
        ev = self.streams["events"]
        k = (acct, "events")
        n = self.volume(acct, ev)
        idx = n + self.next_extra.get(k, 0)
        self.next_extra[k] = self.next_extra.get(k, 0) + 1
        eid = self.oid(acct, ev, idx)
        self._req += 1
        data = {"object": obj}
        if prev is not None:
            data["previous_attributes"] = prev
        e = {"id": eid, "object": "event", "api_version": API_VERSION, "created": at, "data": data,
             "livemode": False, "pending_webhooks": 0,
             "request": {"id": "req_" + random_token(self.seed ^ self._req, 14), "idempotency_key": None},
             "type": etype, "__created": at}
        if acct:
            e = {"id": eid, "object": "event", "account": self.account_id(acct),
                 **{k2: v for k2, v in e.items() if k2 not in ("id", "object")}}
        self.objects.setdefault(k, {})[eid] = e
        self.extra.setdefault(k, []).append((at, idx, eid))
        return e

    def _event_type(self, st: Stream, action: str) -> str | None:
        """The event type of the API version that says an object of `st` was created, updated
        or deleted; None when the version has none (a balance transaction's creation, a billing
        alert's update: Stripe sends no such event, and neither does the sandbox). A creation
        Stripe announces by the new object's status instead (a charge's `charge.succeeded`) is
        not sent either: the control API's creations are what a list shows, not a payment flow."""
        if action == "deleted" and st.spec.deleted_event:
            return st.spec.deleted_event
        cands = [t for t in st.spec.event_types if t.endswith("." + action)]
        for t in cands:
            if t.rsplit(".", 1)[0].split(".")[-1] == st.otype.split(".")[-1]:
                return t
        return cands[0] if cands else None

    def _stream(self, name):
        if name not in self.streams:
            raise KeyError(f"unknown stream {name!r}")
        return self.streams[name]

    def create(self, stream: str, fields: dict | None = None, at: int | None = None, account: int = 0,
               parent: str | None = None) -> dict:
        with self.lock:
            st = self._stream(stream)
            at = self.clock if at is None else int(at)
            k = (account, st.name)
            fields = dict(fields or {})
            if st.is_child:
                pid = parent or fields.get(st.spec.parent_param)
                if not pid:
                    raise ValueError(f"{stream} needs parent=<{st.parent.name} id>")
                pi, _ = self.locate(account, st.parent, pid)
                ce = self.child_extra.setdefault(k, {})
                slot = self.n_children(account, st, pi)[1]
                ce[pi] = ce.get(pi, 0) + 1
                idx = (pi << SLOT_BITS) | slot
                tmpl_i = mix(idx) % max(1, self.volume(account, st.parent))
                d = orjson.loads(self.render_base(account, st, idx))
                del tmpl_i
            else:
                n = self.volume(account, st)
                idx = n + self.next_extra.get(k, 0)
                self.next_extra[k] = self.next_extra.get(k, 0) + 1
                # start from a generated look-alike, then apply fields
                d = orjson.loads(self.render_base(account, st, idx % max(1, n), created=at))
                d["id"] = self.oid(account, st, idx)
                for ch in st.children:
                    if ch.spec.embedded_field in d:
                        d[ch.spec.embedded_field] = {"object": "list", "data": [], "has_more": False,
                                                     "url": self.child_url(ch, d["id"])}
                self.extra.setdefault(k, []).append((at, idx, d["id"]))
            d.update(fields)
            d["__created"] = at if not st.is_child else self.created(account, st, idx)
            before = self._snapshot(account, st.parent, idx >> SLOT_BITS) if st.is_child else None
            self.objects.setdefault(k, {})[d["id"]] = d
            if st.is_child:
                return self._child_changed(account, st, idx, at, "created", before)
            snap = self._snapshot(account, st, idx)
            self._event(account, self._event_type(st, "created"), snap, None, at)
            return snap

    def _child_changed(self, acct, st, idx, at, action, before=None):
        """The events of a child's change; `before` is its parent's snapshot before it."""
        snap = self._snapshot(acct, st, idx) if action != "deleted" else None
        par = st.parent
        pi = idx >> SLOT_BITS
        psnap = self._snapshot(acct, par, pi)
        if st.spec.event_types:
            # A child with events of its own (a customer's tax ids, an account's persons) changes
            # without an event of its parent; embedded lists without events (invoice lines,
            # subscription items) change their parent, which says so.
            obj = snap or {"id": self.oid(acct, st, idx), "object": st.otype, "deleted": True}
            if st.spec.parent_param and st.spec.parent_param not in obj:
                obj = {**obj, st.spec.parent_param: psnap.get("id")}
            self._event(acct, self._event_type(st, action), obj, None, at)
        else:
            # The parent's `previous_attributes` hold the embedded list as it was, as Stripe's
            # do for any attribute an update changed.
            field = st.spec.embedded_field
            if field and before is not None and before.get(field) != psnap.get(field):
                prev = {field: before.get(field)}
            else:
                prev = {}
            self._event(acct, self._event_type(par, "updated"), psnap, prev, at)
        return snap

    def _live(self, stream: str, oid: str, at: int | None, account: int):
        """(stream, mutation time, index) of an object that exists; NotFound otherwise."""
        st = self._stream(stream)
        i, deleted_at = self.locate(account, st, oid)
        if deleted_at is not None:
            raise NotFound(oid)
        return st, self.clock if at is None else int(at), i

    def update(self, stream: str, oid: str, fields: dict, at: int | None = None, account: int = 0) -> dict:
        with self.lock:
            st, at, i = self._live(stream, oid, at, account)
            k = (account, st.name)
            cur = self.objects.get(k, {}).get(oid)
            if cur is None:
                cur = orjson.loads(self.render(account, st, i))
                cur["__created"] = self.created(account, st, i)
                self.objects.setdefault(k, {})[oid] = cur
            prev = {f: cur.get(f) for f in fields}
            before = self._snapshot(account, st.parent, i >> SLOT_BITS) if st.is_child else None
            cur.update(fields)
            if st.is_child:
                return self._child_changed(account, st, i, at, "updated", before)
            snap = self._snapshot(account, st, i)
            self._event(account, self._event_type(st, "updated"), snap, prev, at)
            return snap

    def delete(self, stream: str, oid: str, at: int | None = None, account: int = 0) -> dict:
        with self.lock:
            st, at, i = self._live(stream, oid, at, account)
            if st.otype in CANCELED_ON_DELETE:  # Stripe cancels subscriptions (facts.CANCELED_ON_DELETE)
                k = (account, st.name)
                snap = self._snapshot(account, st, i)
                cur = self.objects.setdefault(k, {}).setdefault(oid, dict(snap, __created=self.created(account, st, i)))
                fixed, times = CANCELED_ON_DELETE[st.otype]
                cur.update({**fixed, **{f: at for f in times}})
                snap = self._snapshot(account, st, i)
                self._event(account, self._event_type(st, "deleted"), snap, None, at)
                return snap
            snap = self._snapshot(account, st, i)
            before = self._snapshot(account, st.parent, i >> SLOT_BITS) if st.is_child else None
            self.deleted.setdefault((account, st.name), {})[oid] = at
            if st.is_child:
                self._child_changed(account, st, i, at, "deleted", before)
            else:
                self._event(account, self._event_type(st, "deleted"), snap, None, at)
            return {"id": oid, "object": st.otype, "deleted": True}

    # ------------------------------------------------------------------ truth
    def visible_indices(self, acct: int, st: Stream) -> list[int]:
        """Indices of the objects of `st` a client can reach, newest parent first: a top-level
        list's live objects; a child list's, through each reachable parent in turn (a grandchild,
        such as a subscription item's usage record summaries, through its parent's parents). A
        child list that needs a field of its parent (`parent_fields`: the owners of a Financial
        Connections account are listed by its `ownership`) has nothing under a parent without it."""
        if not st.is_child:
            return [i for _, i in self.iter_desc(acct, st, self.visible_lo(st), self.visible_hi(st))]
        out = []
        for pi in self.visible_indices(acct, st.parent):
            if any(self.field_value(acct, st.parent, pi, fld) is None for _, fld in st.spec.parent_fields):
                continue
            out.extend(idx for idx, _ in self.child_ids(acct, st, pi))
        return out

    def balance(self, acct: int) -> dict:
        """`GET /v1/balance` of an account: what the singleton streams (`balance`, and its
        `available`/`pending` amounts as rows) read."""
        r = random.Random(self.seed * 31 + acct)
        cur = ["usd", "eur"] if acct == 0 else ["usd"]
        body = {"object": "balance", "livemode": False,
                "available": [{"amount": r.randint(0, 5_000_000), "currency": c,
                               "source_types": {"card": r.randint(0, 5_000_000)}} for c in cur],
                "pending": [{"amount": r.randint(0, 500_000), "currency": c,
                             "source_types": {"card": r.randint(0, 500_000)}} for c in cur]}
        if acct == 0:
            body["connect_reserved"] = [{"amount": 0, "currency": "usd"}]
        return body

    def truth(self, stream: str, account: int = 0) -> list[dict]:
        with self.lock:
            st = self._stream(stream)
            if st.spec.kind == "singleton":  # one object; or the rows of one of its list fields
                body = self.balance(account)
                rows_field = getattr(st.spec, "rows_field", None)
                return list(body.get(rows_field) or []) if rows_field else [body]
            if st.is_child:
                return [orjson.loads(self.render(account, st, idx)) for idx in self.visible_indices(account, st)]
            if st.name == "events":
                return [orjson.loads(self.render_event(account, i))
                        for _, i in self.iter_desc(account, st, self.visible_lo(st), self.visible_hi(st))]
            if st.name == "report_types" and getattr(self, "reporting", None) is not None:
                return self.reporting.report_types(account)  # served by stripe_sandbox/reporting.py
            pred = None
            return [orjson.loads(self.render(account, st, i))
                    for _, i in self.iter_desc(account, st, self.visible_lo(st), self.visible_hi(st), pred)]
