"""Read Stripe's Python SDK (the `stripe` package) as the generator's source, with `ast` only.

The package is generated from Stripe's current OpenAPI spec: each resource module
(`stripe/_charge.py`) is a typed class per object, each service (`stripe/_charge_service.py`)
holds the request paths, `stripe/params/*_list_params.py` the list parameters, `stripe/_event.py`
the event types and `stripe/events/_v1_*_event.py` the object each event is about. This module
turns them into the subset of an OpenAPI document that `scripts/generate.py` reads, so both
sources go through the same rules:

    paths[path]["get"]                 every GET; a list's has `parameters` (query) and a
                                       `responses` schema whose `data.items` names its objects
    components["schemas"][name]        one per class: a resource by its `object` value
                                       (`charge`), a nested class by its qualified name
                                       (`charge.BillingDetails.Address`); `deleted_<name>` for
                                       objects Stripe can return as `deleted: true`
    info["version"]                    the API version the package declares (`_ApiVersion.CURRENT`)

The package is located with `importlib.util.find_spec` and never imported.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cached_property
from pathlib import Path

REF = "#/components/schemas/"
SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
           "Decimal": "string"}  # decimals travel as strings ("12.5")
UNTYPED = {"Any", "object", "StripeObject", "UntypedStripeObject", "Dict", "dict"}
# Unix times. The spec marks them `format: unix-time`; the SDK says so in some docstrings
# ("Measured in seconds since the Unix epoch.") and otherwise only by name. These names are
# unix times in every object of Stripe's 2023-08-16 spec (tests/test_generate.py checks the
# rule against it); `monthly_anchor` (a day) and `divide_by` (a number) are not.
UNIX_TIME_DOC = "seconds since the unix epoch"
UNIX_TIME_NAME = re.compile(r"(^|_)(at|date|on|start|end|time|until|after|before|deadline|timestamp)$|"
                            r"^(as_of|billing_cycle_anchor|created|due_by|eta|expires|next_payment_attempt|"
                            r"next_pending_invoice_item_invoice|redeem_by|updated)$")


def package_root() -> Path:
    spec = importlib.util.find_spec("stripe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `stripe` package is not installed: pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations)))


class Module:
    """One parsed source file: its classes and the names it imports."""

    def __init__(self, reader: SdkReader, name: str):
        self.reader, self.name = reader, name
        self.tree = ast.parse(reader.path_of(name).read_text())
        self.imports: dict[str, str] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = node.module
        self.classes = {n.name: n for n in self.tree.body if isinstance(n, ast.ClassDef)}


class SdkReader:
    def __init__(self, root: Path | None = None):
        self.root = root or package_root()
        self.modules: dict[str, Module] = {}
        self.components: dict[str, dict] = {}
        self.names: dict[tuple[str, str], str] = {}  # (module, qualified class) -> component name

    # -- files -------------------------------------------------------------------------------
    def path_of(self, module: str) -> Path:
        return self.root.joinpath(*module.split(".")[1:]).with_suffix(".py")

    def module(self, name: str) -> Module:
        if name not in self.modules:
            self.modules[name] = Module(self, name)
        return self.modules[name]

    def module_names(self, pattern: str) -> list[str]:
        return sorted("stripe." + ".".join(p.relative_to(self.root).with_suffix("").parts)
                      for p in self.root.rglob(pattern) if "v2" not in p.relative_to(self.root).parts)

    def _constant(self, module: str, name: str) -> str:
        for node in ast.walk(self.module(module).tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
                return node.value.value
        raise SystemExit(f"{self.path_of(module)} declares no {name}")

    @cached_property
    def api_version(self) -> str:
        return self._constant("stripe._api_version", "CURRENT")  # `_ApiVersion.CURRENT`

    @cached_property
    def version(self) -> str:
        return self._constant("stripe._version", "VERSION")  # the package's own version

    # -- the document ------------------------------------------------------------------------
    def openapi(self) -> dict:
        paths: dict[str, dict] = {}
        for name in self.module_names("*_service.py"):
            module = self.module(name)
            for cls in module.classes.values():
                for fn in cls.body:
                    if isinstance(fn, ast.FunctionDef):
                        self._operation(module, fn, paths)
        return {"info": {"version": self.api_version, "x-stripe-python": self.version},
                "paths": dict(sorted(paths.items())), "components": {"schemas": self.components}}

    def _operation(self, module: Module, fn: ast.FunctionDef, paths: dict) -> None:
        call = next((n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                     and n.func.attr == "_request"), None)
        if call is None or len(call.args) < 2 or getattr(call.args[0], "value", None) != "get":
            return
        target = call.args[1]
        if isinstance(target, ast.Call):  # "/v1/customers/{customer}/tax_ids".format(...)
            target = target.func.value
        path = target.value
        if not path.startswith("/v1/"):
            return
        op: dict = {}
        returns = ast.parse(fn.returns.value, mode="eval").body if isinstance(fn.returns, ast.Constant) else None
        if isinstance(returns, ast.Subscript) and getattr(returns.value, "id", None) == "ListObject":
            items = self._annotation(module, (), returns.slice)
            items = items.get("anyOf", [items])
            op["parameters"] = self._query_params(module, fn)
            op["responses"] = {"200": {"content": {"application/json": {"schema": {"properties": {
                "object": {"enum": ["list"]}, "data": {"items": {"anyOf": items}}}}}}}}
        elif isinstance(returns, ast.Name) and returns.id in module.imports:
            self._annotation(module, (), returns)  # the object a retrieve returns is a component too
        paths.setdefault(path, {})["get"] = op

    def _query_params(self, module: Module, fn: ast.FunctionDef) -> list[dict]:
        arg = next((a for a in fn.args.args if a.arg == "params"), None)
        name = ast.unparse(arg.annotation) if arg is not None else ""
        name = name.removeprefix("Optional[").removesuffix("]").strip("'\"")
        if not name:
            return []
        params = self.module(module.imports[name]).classes[name]
        out = []
        for node in params.body:
            if isinstance(node, ast.AnnAssign):
                required = not (isinstance(node.annotation, ast.Subscript)
                                and getattr(node.annotation.value, "id", None) == "NotRequired")
                out.append({"in": "query", "name": node.target.id, "required": required})
        return out

    # -- classes -> components ---------------------------------------------------------------
    def component(self, module: Module, qualname: tuple[str, ...]) -> str:
        """The component name of a class (parsing it on first use)."""
        key = (module.name, ".".join(qualname))
        if key in self.names:
            return self.names[key]
        cls = module.classes[qualname[0]]
        for part in qualname[1:]:
            cls = next(n for n in cls.body if isinstance(n, ast.ClassDef) and n.name == part)
        object_name = _object_name(cls) if len(qualname) == 1 else None
        if object_name:
            name = object_name
        else:
            owner = self.component(module, qualname[:1]) if len(qualname) > 1 else module.name
            name = ".".join((owner, *qualname[1:])) if len(qualname) > 1 else f"{module.name}.{qualname[0]}"
        if name in self.components:
            raise SystemExit(f"two classes are component {name!r}")
        self.names[key] = name
        self.components[name] = {}  # reserved: a class may refer to itself
        properties: dict[str, dict] = {}
        body = cls.body
        for i, node in enumerate(body):
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            if isinstance(node.annotation, ast.Subscript) and ast.unparse(node.annotation.value) == "ClassVar":
                continue  # OBJECT_NAME
            prop = self._annotation(module, qualname, node.annotation)
            following = body[i + 1] if i + 1 < len(body) else None
            doc = ""
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                    and isinstance(following.value.value, str):
                doc = " ".join(following.value.value.split())
                prop = {**prop, "description": doc}
            unix_time = UNIX_TIME_DOC in doc.lower() or UNIX_TIME_NAME.search(node.target.id)
            if prop.get("type") == "integer" and unix_time:
                prop["format"] = "unix-time"
            properties[node.target.id] = prop
        self.components[name] = {"type": "object", "properties": properties}
        deleted = properties.get("deleted", {})
        if object_name and deleted.get("enum") == [True]:
            # The SDK folds Stripe's `deleted_<object>` variant into the class.
            self.components[f"deleted_{name}"] = {"type": "object", "properties": {
                "id": properties["id"], "object": properties["object"], "deleted": deleted}}
        return name

    def _resolve(self, module: Module, scope: tuple[str, ...], dotted: str) -> dict:
        """A class named in an annotation: nested in the current class (or an enclosing one),
        defined in the module, or imported."""
        parts = tuple(dotted.split("."))
        for depth in range(len(scope), -1, -1):
            candidate = scope[:depth] + parts
            if self._class_exists(module, candidate):
                return {"$ref": REF + self.component(module, candidate)}
        if parts[0] in module.imports:
            source = self.module(module.imports[parts[0]])
            original = next((a.name for n in ast.walk(module.tree) if isinstance(n, ast.ImportFrom)
                             for a in n.names if (a.asname or a.name) == parts[0]), parts[0])
            return {"$ref": REF + self.component(source, (original, *parts[1:]))}
        raise SystemExit(f"{module.name}: cannot resolve {dotted!r} in {'.'.join(scope)}")

    @staticmethod
    def _class_exists(module: Module, qualname: tuple[str, ...]) -> bool:
        cls = module.classes.get(qualname[0])
        for part in qualname[1:]:
            if cls is None:
                return False
            cls = next((n for n in cls.body if isinstance(n, ast.ClassDef) and n.name == part), None)
        return cls is not None

    def _annotation(self, module: Module, scope: tuple[str, ...], node: ast.expr) -> dict:
        """One type annotation as an OpenAPI schema node."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self._annotation(module, scope, ast.parse(node.value, mode="eval").body)
        if isinstance(node, ast.Constant) and node.value is None:
            return {"type": "null"}
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = ast.unparse(node)
            if name in SCALARS:
                return {"type": SCALARS[name]}
            if name in UNTYPED:
                return {} if name in ("Any", "object") else {"type": "object"}
            return self._resolve(module, scope, name)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._union(module, scope, [node.left, node.right])
        if not isinstance(node, ast.Subscript):
            raise SystemExit(f"{module.name}: unknown annotation {ast.unparse(node)}")
        outer = ast.unparse(node.value)
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            return {**self._annotation(module, scope, args[0]), "nullable": True}
        if outer == "Union":
            return self._union(module, scope, args)
        if outer == "Literal":
            values = [a.value for a in args]
            kinds = {type(v) for v in values}
            kind = {str: "string", bool: "boolean", int: "integer"}[kinds.pop()] if len(kinds) == 1 else None
            return {"type": kind, "enum": values} if kind else {}
        if outer in ("List", "list"):
            return {"type": "array", "items": self._annotation(module, scope, args[0])}
        if outer in ("Dict", "dict", "UntypedStripeObject"):
            return {"type": "object", "additionalProperties": self._annotation(module, scope, args[-1])}
        if outer == "ExpandableField":
            target = self._annotation(module, scope, args[0])
            objects = target.get("anyOf", [target])
            return {"anyOf": [{"type": "string"}, *objects], "x-expansionResources": {"oneOf": objects}}
        if outer == "ListObject":
            items = self._annotation(module, scope, args[0])
            return {"type": "object", "properties": {
                "data": {"type": "array", "items": items}, "has_more": {"type": "boolean"},
                "object": {"type": "string", "enum": ["list"]}, "url": {"type": "string"}}}
        raise SystemExit(f"{module.name}: unknown annotation {ast.unparse(node)}")

    def _union(self, module: Module, scope: tuple[str, ...], members: list[ast.expr]) -> dict:
        converted = [self._annotation(module, scope, m) for m in members]
        nullable = any(c == {"type": "null"} for c in converted)
        converted = [c for c in converted if c != {"type": "null"}]
        scalars = {c.get("type") for c in converted}
        if len(scalars) == 1 and all(set(c) <= {"type", "enum"} for c in converted):
            out = {"type": scalars.pop()}  # Literal["a", "b"] | str: a string
        elif len(converted) == 1:
            out = converted[0]
        else:
            out = {"anyOf": converted}
        return {**out, "nullable": True} if nullable else out


def _object_name(cls: ast.ClassDef) -> str | None:
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "OBJECT_NAME":
            return node.value.value
    return None


def event_types(reader: SdkReader) -> tuple[list[str], dict[str, str]]:
    """Every v1 event type (`Event.type`), and the object each is about where the package says
    (`fetch_related_object` of `stripe/events/_v1_<type>_event.py`)."""
    types: list[str] = []
    for node in ast.walk(reader.module("stripe._event").tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "type":
            members = node.annotation.slice
            types = [e.value for e in (members.elts if isinstance(members, ast.Tuple) else [members])]
    related: dict[str, str] = {}
    for name in reader.module_names("events/_v1_*_event.py"):
        module = reader.module(name)
        lookup = returns = None
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "LOOKUP_TYPE":
                lookup = node.value.value
            if isinstance(node, ast.FunctionDef) and node.name == "fetch_related_object":
                returns = node.returns.value
        if lookup and returns:
            ref = reader._resolve(module, (), returns)["$ref"].removeprefix(REF)
            related[lookup.removeprefix("v1.")] = _object_value(reader.components[ref], ref)
    return types, related


def _object_value(component: dict, name: str) -> str:
    enum = component.get("properties", {}).get("object", {}).get("enum")
    return enum[0] if enum else name
