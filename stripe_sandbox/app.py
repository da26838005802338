"""Request handling: auth, routing, Stripe-like lists/retrieves/errors, limits, faults, control API."""

from __future__ import annotations

import base64
import random
import re
import time
from collections import Counter, deque
from email.utils import formatdate
from urllib.parse import parse_qsl

import orjson

from .facts import DEFAULT_LIMIT, EVENT_RETENTION, EXPANDABLE_BEYOND_SPEC, MAX_EVENT_TYPES, MAX_LIMIT
from .http import Request, Response
from .ids import random_token
from .limits import Faults, RateLimiter
from .oauth import OAuth
from .store import API_VERSION, DELETED_TYPES, SLOT_BITS, NotFound, Store, Stream

# A version's name: a date, and since 2024-09-30 the major release's name (`2026-10-28.endive`).
API_VERSION_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")


def err(status, message, type_="invalid_request_error", code=None, param=None, headers=None, **extra):
    e = {"type": type_, "message": message}
    if code:
        e["code"] = code
        e["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        e["param"] = param
    e.update(extra)
    return Response(status, orjson.dumps({"error": e}), list(headers or []))


def mask_key(key: str) -> str:
    parts = key.split("_")
    pre = "_".join(parts[:2]) + "_" if len(parts) >= 3 else ""
    return pre + "****" + key[-4:] if len(key) > len(pre) + 4 else pre + "****"


def _in_range(value: int, created: dict) -> bool:
    return all({"eq": value == bound, "gt": value > bound, "gte": value >= bound, "lt": value < bound,
                "lte": value <= bound}[op] for op, bound in created.items())


class _Nested:
    """A table seen from inside one of its sub-objects: the one link there, as a top-level one."""

    def __init__(self, st, field, table):
        self.links = {field: table}
        self.spec = st.spec
        self.otype = st.otype


class App:
    def __init__(self, store: Store, keys=("sk_test_sandbox",), latency_ms: float = 0, jitter_ms: float = 0,
                 rps: float | None = None, endpoint_rps: float | None = None, log_size: int = 200_000):
        self.store = store
        self.keys = set(keys)
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.limiter = RateLimiter(rps, endpoint_rps)
        self.faults = Faults(store.seed)
        self.rng = random.Random(store.seed ^ 0x1A7)
        self.log: deque = deque(maxlen=log_size)
        self.counts: Counter = Counter()       # (path, status)
        self.route_counts: Counter = Counter()  # (endpoint, status)
        self.status_counts: Counter = Counter()
        self.versions: Counter = Counter()
        self.total = 0
        self._rid = 0
        self.oauth = OAuth(self.keys)
        # --- Reporting API (stripe_sandbox/reporting.py) ---
        from .reporting import Reporting
        self.reporting = store.reporting = Reporting(store)
        # --- end Reporting API ---
        self._build_routes()

    # ------------------------------------------------------------------ routes
    def _build_routes(self):
        self.exact = {}
        self.patterns = []
        for st in self.store.streams.values():
            sp = st.spec
            if sp.kind == "singleton":
                self.exact[sp.path] = ("balance", st, sp.path)
                continue
            self._add(sp.path, "list", st)
            if sp.retrieve_path:
                self._add(sp.retrieve_path, "retrieve", st)
            elif not st.is_child:
                self._add(sp.path + "/{id}", "retrieve", st)

    def _add(self, pattern, kind, st):
        if "{" not in pattern:
            self.exact[pattern] = (kind, st, pattern)
        else:
            segs = pattern.strip("/").split("/")
            self.patterns.append((segs, kind, st, pattern))

    def route(self, path):
        r = self.exact.get(path)
        if r:
            return r[0], r[1], r[2], {}
        segs = path.strip("/").split("/")
        for psegs, kind, st, pattern in self.patterns:
            if len(psegs) != len(segs):
                continue
            params = {}
            for a, b in zip(psegs, segs):
                if a[0] == "{":
                    params[a[1:-1]] = b
                elif a != b:
                    break
            else:
                return kind, st, pattern, params
        return None

    # ------------------------------------------------------------------ entry
    def __call__(self, req: Request) -> Response:
        self._rid += 1
        rid = "req_" + random_token(self._rid * 7919 + self.store.seed, 14)
        path, _, query = req.target.partition("?")
        if path.startswith("/_sandbox/"):
            resp = self.control(req, path, query)
            resp.headers.append(("Request-Id", rid))
            return resp
        if path == "/oauth/token" and req.method == "POST":
            status, body = self.oauth.token(req.body or b"", req.headers.get("authorization", ""),
                                            self.store.account_id)
            self.log.append({"t": time.time(), "method": "POST", "path": path, "query": "", "status": status,
                             "account": 0, "stripe_version": None, "request_id": rid, "endpoint": path,
                             "fault": None})
            return Response(status, orjson.dumps(body), [("Request-Id", rid)])
        acct = 0
        version = req.headers.get("stripe-version")
        endpoint = None
        if version is not None and not API_VERSION_FORMAT.fullmatch(version):
            # Stripe refuses a Stripe-Version that is not a version's name
            resp = err(400, f"Invalid Stripe API version: {version}")
        else:
            try:
                resp, acct, endpoint = self.handle(req, path, query)
            except Exception as e:
                resp = err(500, f"sandbox internal error: {type(e).__name__}: {e}", "api_error")
        resp.headers.append(("Request-Id", rid))
        # Stripe's clock, as Stripe sends it: the tap freezes its window bound from this header.
        resp.headers.append(("Date", formatdate(self.store.clock, usegmt=True)))
        # The version the response is rendered in: the request's, else the account's default (the
        # sandbox's version). The sandbox renders every version's objects in the shapes of its own.
        resp.headers.append(("Stripe-Version", version or API_VERSION))
        if self.latency_ms or self.jitter_ms:
            resp.delay += (self.latency_ms + self.rng.random() * self.jitter_ms) / 1000.0
        self.total += 1
        self.counts[(path, resp.status)] += 1
        self.route_counts[(endpoint or path, resp.status)] += 1
        self.status_counts[resp.status] += 1
        self.versions[version] += 1
        self.log.append({"t": time.time(), "method": req.method, "path": path, "query": query, "status": resp.status,
                         "account": acct, "stripe_version": version, "request_id": rid, "endpoint": endpoint,
                         "fault": resp.action})
        return resp

    def _auth(self, req):
        h = req.headers.get("authorization", "")
        key = None
        if h.lower().startswith("bearer "):
            key = h[7:].strip()
        elif h.lower().startswith("basic "):
            try:
                key = base64.b64decode(h[6:].strip()).decode().split(":", 1)[0]
            except Exception:
                key = ""
        if not key:
            return None, err(401, "You did not provide an API key. You need to provide your API key in the "
                                  "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                                  "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                                  "or we can help at https://support.stripe.com/.")
        self._oauth_account = None
        account, refused = self.oauth.authenticate(key, req.target.partition("?")[0])
        if refused:
            status, message = refused
            return None, err(status, message, code="expired_key" if status == 401 else "more_permissions_required")
        if account is not None:
            self._oauth_account = account
            return key, None
        if key not in self.keys:
            return None, err(401, f"Invalid API Key provided: {mask_key(key)}")
        return key, None

    def handle(self, req: Request, path: str, query: str):
        key, bad = self._auth(req)
        if bad:
            return bad, 0, None
        st_ = self.store
        acct = 0
        hdr = req.headers.get("stripe-account")
        oauth_account = getattr(self, "_oauth_account", None)
        if oauth_account is not None:  # an OAuth access token acts for its own account
            acct, hdr = oauth_account, None
        if hdr:
            a = st_.account_index(hdr)
            if a is None:
                return err(403, f"The provided key '{mask_key(key)}' does not have access to account '{hdr}' "
                                "(or that account does not exist). Application access may have been revoked.",
                           code="account_invalid"), 0, None
            acct = a
        r = self.route(path)
        endpoint = f"{req.method} {r[2]}" if r else None
        if not self.limiter.allow(acct, endpoint or path):
            return err(429, "Request rate limit exceeded. Learn more about rate limits here "
                            "https://stripe.com/docs/rate-limits.", code="rate_limit"), acct, endpoint
        fault = self.faults.pick(req.method, path)
        if fault is not None:
            resp = self.fault_response(fault, key, acct, path)
            if resp is not None:
                return resp, acct, endpoint
        if path == "/v1/account" and req.method == "GET":  # the account the request acts for
            with st_.lock:
                resp = Response(200, orjson.dumps(st_.own_account(acct)))
            return self.with_fault(resp, fault), acct, "GET /v1/account"
        # --- Reporting API (stripe_sandbox/reporting.py): report types, runs (POST), result files ---
        if path.startswith(("/v1/reporting/", "/v1/files/")):
            resp = self.reporting.handle(req, acct, path, query)
            if resp is not None:
                return resp, acct, endpoint
        # --- end Reporting API ---
        if r is None:
            return err(404, f"Unrecognized request URL ({req.method}: {path}). Please see https://stripe.com/docs "
                            "or we can help at https://support.stripe.com/.", code=None), acct, endpoint
        if req.method != "GET":
            return err(405, f"Unrecognized request URL ({req.method}: {path}). The sandbox is read-only; use "
                            "/_sandbox/ to mutate."), acct, endpoint
        kind, st, _pattern, pparams = r
        try:
            params = parse_qsl(query, keep_blank_values=True)
        except ValueError:
            params = []
        with st_.lock:
            if kind == "balance":
                resp = self.balance(acct)
            elif kind == "list":
                resp = self.list(acct, st, pparams, params, path)
            else:
                resp = self.retrieve(acct, st, pparams, params)
        return self.with_fault(resp, fault), acct, endpoint

    @staticmethod
    def with_fault(resp: Response, fault) -> Response:
        """A response as a fault on the wire leaves it: late, cut short or reset."""
        if fault is not None and fault.kind in ("slow", "truncated", "reset"):
            resp.delay += fault.delay if fault.kind == "slow" else 0
            resp.action = {"truncated": "truncate", "reset": "reset"}.get(fault.kind)
        return resp

    # ------------------------------------------------------------------ faults
    def fault_response(self, f, key, acct, path):
        k = f.kind
        if k == "500":
            return err(500, "An unknown error occurred", "api_error")
        if k == "503":
            return err(503, "The server is temporarily unavailable; please retry.", "api_error",
                       headers=[("Stripe-Should-Retry", "true")])
        if k == "400":
            return err(400, "Invalid request (injected fault).", headers=[("Stripe-Should-Retry", "false")])
        if k == "unexpandable":  # Stripe's answer to an `expand[]` it does not allow on this call
            return err(400, "This property cannot be expanded (injected fault).", param="expand",
                       headers=[("Stripe-Should-Retry", "false")])
        if k == "404":
            return err(404, "No such resource (injected fault).", code="resource_missing")
        if k == "429":
            return err(429, "Request rate limit exceeded. Learn more about rate limits here "
                            "https://stripe.com/docs/rate-limits.", code="rate_limit")
        if k == "403":
            perm = f.permission
            if not perm:
                resource = path.strip("/").split("/")[1] if path.count("/") > 1 else "x"
                perm = "rak_" + resource.rstrip("s") + "_read"
            return err(403, f"The provided key '{mask_key(key)}' does not have the required permissions for this "
                            f"endpoint on account '{self.store.account_id(acct)}'. Having the '{perm}' permission "
                            "would allow this request to continue.", "invalid_request_error",
                       code="more_permissions_required")
        if k == "not_setup":
            return err(400, f"Your account is not set up to use {f.product}. Please visit your dashboard to "
                            f"apply for {f.product}.", "invalid_request_error")
        if k == "slow" or k == "truncated" or k == "reset":
            return None  # handled after the normal response is built
        return None

    # ------------------------------------------------------------------ helpers
    def _deleted_or_404(self, st, oid, deleted_at):
        if deleted_at is not None and st.otype in DELETED_TYPES:
            return Response(200, orjson.dumps({"id": oid, "object": st.otype, "deleted": True}))
        return self._missing(st, oid, "id")

    def _missing(self, st, oid, param=None):
        noun = st.otype.split(".")[-1].replace("_", " ") if st.otype != "line_item" else "line item"
        return err(404, f"No such {noun}: '{oid}'", code="resource_missing", param=param)

    def balance(self, acct):
        return Response(200, orjson.dumps(self.store.balance(acct)))

    def _expand_obj(self, acct, st, d: dict, path: str, depth=0):
        nested = next((f for f in st.links if "." in f and (path == f or path.startswith(f + "."))), None)
        if nested is not None:  # an id inside a sub-object: parent.subscription_details.subscription
            holder = d
            for key in nested.split(".")[:-1]:
                holder = holder.get(key) if isinstance(holder, dict) else None
            last = nested.rsplit(".", 1)[1]
            if isinstance(holder, dict) and last in holder:
                inner = {last: holder[last]}
                view = _Nested(st, last, st.links[nested])
                self._expand_obj(acct, view, inner, last + path[len(nested):], depth)
                holder[last] = inner[last]
            return
        head, _, rest = path.partition(".")
        if head not in d:
            child = self.store.includable_child(st, head) if isinstance(st, Stream) else None
            if child is None or not isinstance(d.get("id"), str) or (rest and not rest.startswith("data.")):
                raise ValueError(path)
            # A child list Stripe returns only when expanded (a customer's `tax_ids`)
            listing = orjson.loads(self.store.included_list(acct, st, child, d["id"]))
            if rest and depth < 3:  # `tax_ids.data.customer`: each of its items
                for item in listing["data"]:
                    self._expand_obj(acct, child, item, rest[len("data."):], depth + 1)
            d[head] = listing
            return
        tname = st.links.get(head)
        if tname is None:
            allowed = {f for f, _ in st.spec.expandable} | set(getattr(st.spec, "expandable_fields", ())) \
                | EXPANDABLE_BEYOND_SPEC.get(st.otype, frozenset())
            if head not in allowed:
                raise ValueError(path)
            return
        v = d[head]
        if isinstance(v, str):
            tst = self.store.streams[tname]
            try:
                i, _ = self.store.locate(acct, tst, v)
                d[head] = orjson.loads(self.store.render(acct, tst, i))
            except NotFound:
                return
        if rest and isinstance(d[head], dict) and depth < 3:
            self._expand_obj(acct, self.store.streams[tname], d[head], rest, depth + 1)

    def _apply_expand(self, acct, st, raw: bytes, exps) -> bytes:
        if not exps:
            return raw
        d = orjson.loads(raw)
        for e in exps:
            self._expand_obj(acct, st, d, e)
        return orjson.dumps(d)

    def retrieve(self, acct, st, pparams, params):
        oid = pparams.get("id")
        exps = [v for k, v in params if k.split("[")[0] == "expand"]
        for k, _ in params:
            if k.split("[")[0] != "expand":
                return err(400, f"Received unknown parameter: {k.split('[')[0]}", code="parameter_unknown",
                           param=k.split("[")[0])
        store = self.store
        try:
            if st.name == "events":
                i, _ = store.locate(acct, st, oid)
                if store.created(acct, st, i) < store.clock - EVENT_RETENTION:
                    raise NotFound(oid)
                return Response(200, store.render_event(acct, i))
            i, deleted_at = store.locate(acct, st, oid)
            if st.is_child:
                for name, val in pparams.items():
                    if name != "id" and val != store.oid(acct, st.parent, i >> SLOT_BITS):
                        raise NotFound(oid)
        except NotFound:
            return self._missing(st, oid)
        if deleted_at is not None:
            return self._deleted_or_404(st, oid, deleted_at)
        try:
            return Response(200, self._apply_expand(acct, st, store.render(acct, st, i), exps))
        except ValueError as e:
            return err(400, f"This property cannot be expanded ({e}).", param="expand")

    def list(self, acct, st, pparams, params, path):
        store = self.store
        sp = st.spec
        if sp.paginated:
            allowed = set(sp.query_params) | {"limit", "starting_after", "ending_before", "expand"}
        else:
            allowed = set(sp.query_params) | {"expand"}
        if sp.parent_via == "query" and sp.parent_param:
            allowed.add(sp.parent_param)
        single = {}
        created = {}
        exps = []
        types = []
        for k, v in params:
            base = k.split("[", 1)[0]
            if base not in allowed:
                return err(400, f"Received unknown parameter: {base}", code="parameter_unknown", param=base)
            if base == "expand":
                exps.append(v)
            elif base == "types":
                types.append(v)
            elif base == "created":
                op = k[len("created"):].strip("[]") or "eq"
                if op not in ("eq", "gt", "gte", "lt", "lte"):
                    return err(400, f"Received unknown parameter: {k}", code="parameter_unknown", param=k)
                try:
                    created[op] = int(v)
                except ValueError:
                    return err(400, f"Invalid integer: {v}", param=k)
            elif "[" in k:
                continue  # other range filters (due_date[gte], arrival_date[lt], ...) are accepted, not applied
            else:
                single[base] = v
        for rp in sp.required_params:
            if not single.get(rp):
                return err(400, f"Missing required param: {rp}.", code="parameter_missing", param=rp)
        limit = DEFAULT_LIMIT if sp.paginated else 1_000_000  # unpaginated lists return everything
        if "limit" in single:
            try:
                limit = int(single["limit"])
            except ValueError:
                return err(400, f"Invalid integer: {single['limit']}", code="parameter_invalid_integer", param="limit")
            if not 1 <= limit <= MAX_LIMIT:
                return err(400, f"This value must be greater than or equal to 1 and less than or equal to {MAX_LIMIT}."
                           if limit > MAX_LIMIT else "This value must be greater than or equal to 1.",
                           code="parameter_invalid_integer", param="limit")
        if "starting_after" in single and "ending_before" in single:
            return err(400, "You may only specify one of these parameters: ending_before, starting_after.")
        if types and "type" in single:
            return err(400, "You may only specify one of these parameters: type, types.")
        if len(types) > MAX_EVENT_TYPES:
            return err(400, f"Too many values for types: at most {MAX_EVENT_TYPES} are allowed.", param="types")
        item_exps = []
        for e in exps:
            if not e.startswith("data."):
                return err(400, f"This property cannot be expanded ({e}). You may want to try expanding "
                                f"'data.{e}' instead.", param="expand")
            item_exps.append(e[5:])
        url = path
        if st.is_child:
            pid = pparams.get(sp.parent_param) if sp.parent_via == "path" else single.get(sp.parent_param)
            return self._child_list(acct, st, pid, single, limit, url, item_exps, created)
        lo, hi = store.visible_lo(st), store.visible_hi(st)
        if created:
            if "eq" in created:
                lo, hi = max(lo, (created["eq"], -1)), min(hi, (created["eq"] + 1, -1))
            if "gte" in created:
                lo = max(lo, (created["gte"], -1))
            if "gt" in created:
                lo = max(lo, (created["gt"] + 1, -1))
            if "lte" in created:
                hi = min(hi, (created["lte"] + 1, -1))
            if "lt" in created:
                hi = min(hi, (created["lt"], -1))
        pred = self._predicate(acct, st, single, types)
        asc = False
        if single.get("starting_after"):
            try:
                ck = store.cursor_key(acct, st, single["starting_after"])
            except NotFound:
                return self._missing(st, single["starting_after"], "starting_after")
            hi = min(hi, ck)
        elif single.get("ending_before"):
            try:
                ck = store.cursor_key(acct, st, single["ending_before"])
            except NotFound:
                return self._missing(st, single["ending_before"], "ending_before")
            lo = max(lo, (ck[0], ck[1] + 1))
            asc = True
        it = store.iter_asc(acct, st, lo, hi, pred) if asc else store.iter_desc(acct, st, lo, hi, pred)
        keys = []
        for k in it:
            keys.append(k[0])
            if len(keys) > limit:
                break
        has_more = len(keys) > limit
        keys = keys[:limit]
        if asc:
            keys.reverse()
        if st.name == "events":
            items = [store.render_event(acct, k[1]) for k in keys]
        else:
            if store.overlay_free(acct, st):
                items = store.render_many(acct, st, keys)
            else:
                render = store.render
                items = [render(acct, st, k[1], k[0]) for k in keys]
        if item_exps:
            try:
                items = [self._apply_expand(acct, st, b, item_exps) for b in items]
            except ValueError as e:
                return err(400, f"This property cannot be expanded (data.{e}).", param="expand")
        body = (b'{"object":"list","data":[' + b",".join(items) + b'],"has_more":' + (b"true" if has_more else b"false")
                + b',"url":"' + url.encode() + b'"}')
        return Response(200, body)

    def _predicate(self, acct, st, single, types):
        store = self.store
        checks = []
        sp = st.spec
        status_param = "status" if "status" in sp.query_params else None
        if st.name == "events":
            wanted = set(types)
            if "type" in single:
                t = single["type"]
                if "*" in t:
                    rx = re.compile("^" + re.escape(t).replace(r"\*", ".*") + "$")
                    checks.append(lambda i: rx.match(store.event_type(acct, i)) is not None)
                else:
                    wanted.add(t)
            if wanted:
                checks.append(lambda i: store.event_type(acct, i) in wanted)
        if status_param:
            sv = single.get(status_param)
            if sv is None and st.status_default_exclude:
                ex = st.status_default_exclude
                checks.append(lambda i: store.field_value(acct, st, i, "status") not in ex)
            elif sv is not None and sv != "all":
                checks.append(lambda i: store.field_value(acct, st, i, "status") == sv)
        for k, v in single.items():
            if k in ("limit", "starting_after", "ending_before", "type", "status", "expand", "created"):
                continue
            if k in st.links or k in st.fields or k in ("customer", "charge", "payment_intent"):
                def chk(i, k=k, v=v):
                    fv = store.field_value(acct, st, i, k)
                    if isinstance(fv, bool):
                        fv = "true" if fv else "false"
                    return fv == v or (fv is not None and str(fv) == v)
                checks.append(chk)
        if not checks:
            return None
        return lambda i: all(c(i) for c in checks)

    def _child_list(self, acct, st, pid, single, limit, url, item_exps, created=None):
        store = self.store
        try:
            pi, pdel = store.locate(acct, st.parent, pid or "")
        except NotFound:
            return self._missing(st.parent, pid, st.spec.parent_param)
        if pdel is not None:
            return self._missing(st.parent, pid, st.spec.parent_param)
        for param, fld in st.spec.parent_fields:  # e.g. the owners of the account's `ownership`
            value = store.field_value(acct, st.parent, pi, fld)
            if value is None or single.get(param) != value:
                kind = fld.replace("_", " ")
                return err(404, f"No such {kind}: '{single.get(param)}'", code="resource_missing", param=param)
        kids = store.child_ids(acct, st, pi)
        if created:  # a child list that takes `created` (issuing tokens, setup attempts): by the item's time
            kids = [(idx, oid) for idx, oid in kids if _in_range(store.created(acct, st, idx), created)]
        ids = [oid for _, oid in kids]
        start, end = 0, len(kids)
        if single.get("starting_after"):
            if single["starting_after"] not in ids:
                return self._missing(st, single["starting_after"], "starting_after")
            start = ids.index(single["starting_after"]) + 1
            sel = kids[start:start + limit]
            has_more = start + limit < end
        elif single.get("ending_before"):
            if single["ending_before"] not in ids:
                return self._missing(st, single["ending_before"], "ending_before")
            end = ids.index(single["ending_before"])
            sel = kids[max(0, end - limit):end]
            has_more = end - limit > 0
        else:
            sel = kids[:limit]
            has_more = limit < end
        items = [store.render(acct, st, idx) for idx, _ in sel]
        if item_exps:
            try:
                items = [self._apply_expand(acct, st, b, item_exps) for b in items]
            except ValueError as e:
                return err(400, f"This property cannot be expanded (data.{e}).", param="expand")
        if st.spec.parent_via == "query":
            url = st.spec.path
        body = (b'{"object":"list","data":[' + b",".join(items) + b'],"has_more":' + (b"true" if has_more else b"false")
                + b',"url":"' + url.encode() + b'"}')
        return Response(200, body)

    # ------------------------------------------------------------------ stats / control
    def stats(self) -> dict:
        by_path: dict = {}
        for (p, s), n in self.counts.items():
            by_path.setdefault(p, {})[str(s)] = n
        by_endpoint: dict = {}
        for (p, s), n in self.route_counts.items():
            by_endpoint.setdefault(p, {})[str(s)] = n
        return {"total": self.total, "by_path": by_path, "by_endpoint": by_endpoint,
                "by_status": {str(k): v for k, v in self.status_counts.items()},
                "stripe_versions": {str(k): v for k, v in self.versions.items()}}

    def reset_stats(self):
        self.log.clear()
        self.counts.clear()
        self.route_counts.clear()
        self.status_counts.clear()
        self.versions.clear()
        self.total = 0

    def control(self, req, path, query):
        """HTTP form of the control API (JSON bodies)."""
        from .sandbox import control_dispatch
        try:
            body = orjson.loads(req.body) if req.body else {}
            q = dict(parse_qsl(query))
            if path.startswith("/_sandbox/reporting/"):  # Reporting API control (stripe_sandbox/reporting.py)
                return Response(200, orjson.dumps(self.reporting.control(path[len("/_sandbox/reporting/"):],
                                                                         {**q, **body}), default=str))
            out = control_dispatch(self, req.method, path[len("/_sandbox/"):], {**q, **body})
            return Response(200, orjson.dumps(out, default=str))
        except NotFound as e:
            return err(404, f"No such object: {e}", code="resource_missing")
        except (KeyError, ValueError, TypeError) as e:
            return err(400, f"{type(e).__name__}: {e}")
