"""YAML documents → validated resources, with errors that name file, line and field.

``yaml.compose_all`` keeps the position of every node, so each value's line is known; after
pydantic validation each error's location is mapped back to the closest line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dockyard.errors import InvalidSpec
from dockyard.spec.common import API_VERSION
from dockyard.spec.kinds import KINDS, AnyResource

Path_ = tuple[str | int, ...]
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class SourceDoc:
    """One document as written: its data and where each value sits."""

    source: str
    line: int
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int:
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


@dataclass
class Loaded:
    resource: AnyResource
    doc: SourceDoc


@dataclass(frozen=True)
class FieldError:
    source: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "path": self.path,
            "message": self.message,
        }


def raise_errors(errors: list[FieldError]) -> None:
    if not errors:
        return
    head = (
        str(errors[0])
        if len(errors) == 1
        else f"{len(errors)} problems:\n" + "\n".join(f"  {e}" for e in errors)
    )
    raise InvalidSpec(
        head,
        hint="fix the file and apply it again; nothing was changed",
        details={"errors": [e.as_dict() for e in errors]},
    )


class _Composer:
    """Turns composed YAML nodes into Python values while recording each value's line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = yaml.constructor.SafeConstructor()
        self.errors: list[FieldError] = []

    def convert(self, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    key = str(key)
                if key in out:
                    self.errors.append(
                        FieldError(
                            self.source,
                            key_node.start_mark.line + 1,
                            _dotted((*path, key)),
                            f"duplicate key '{key}' (first at line {lines[(*path, key)]})",
                        )
                    )
                    continue
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, (*path, key), lines)
                lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i), lines) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def parse_yaml(text: str, source: str = "<stdin>") -> list[SourceDoc]:
    """Split a multi-document YAML text into documents with line maps."""
    composer = _Composer(source)
    docs: list[SourceDoc] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
                continue  # an empty document (a trailing '---')
            lines: dict[Path_, int] = {}
            data = composer.convert(node, (), lines)
            docs.append(SourceDoc(source, node.start_mark.line + 1, data, lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise_errors([FieldError(source, line, "", f"invalid YAML: {exc.problem or exc}")])
    raise_errors(composer.errors)
    return docs


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_at(
    schema: dict[str, Any], root: dict[str, Any], loc: Sequence[str | int]
) -> dict[str, Any]:
    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = root["$defs"][s["$ref"].split("/")[-1]]
        for key in ("anyOf", "allOf", "oneOf"):
            if key in s:
                objects = [resolve(x) for x in s[key] if resolve(x).get("type") != "null"]
                if objects:
                    return objects[0]
        return s

    node = resolve(schema)
    for part in loc:
        if isinstance(part, int):
            node = resolve(node.get("items", {}))
        elif "properties" in node and part in node["properties"]:
            node = resolve(node["properties"][part])
        elif isinstance(node.get("additionalProperties"), dict):
            node = resolve(node["additionalProperties"])
        else:
            return {}
    return node


_SCHEMAS: dict[str, dict[str, Any]] = {}


def _valid_fields(kind: str, loc: Sequence[str | int]) -> list[str]:
    if kind not in _SCHEMAS:
        _SCHEMAS[kind] = KINDS[kind].model_json_schema(by_alias=True)
    schema = _SCHEMAS[kind]
    return sorted(_schema_at(schema, schema, loc).get("properties", {}))


def _friendly(kind: str, err: dict[str, Any]) -> str:
    etype, got = err["type"], err.get("input")
    shown = repr(got) if isinstance(got, str) else str(got)
    loc = err["loc"]
    if etype == "missing":
        return "required field is missing"
    if etype == "extra_forbidden":
        valid = _valid_fields(kind, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown field '{loc[-1]}'; {guess}valid fields: {', '.join(valid)}"
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}, got {shown}"
    simple = {
        "int_parsing": "expected an integer",
        "int_type": "expected an integer",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "list_type": "expected a list",
        "dict_type": "expected a mapping (key: value)",
        "model_type": "expected a mapping (key: value)",
        "model_attributes_type": "expected a mapping (key: value)",
    }
    if etype in simple:
        return f"{simple[etype]}, got {shown}"
    ctx = err.get("ctx", {})
    bounds = {
        "greater_than_equal": "≥",
        "greater_than": ">",
        "less_than_equal": "≤",
        "less_than": "<",
    }
    if etype in bounds:
        limit = next(iter(ctx.values()), "")
        return f"expected a number {bounds[etype]} {limit}, got {shown}"
    if etype == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got {shown}"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


def validate_doc(doc: SourceDoc) -> AnyResource:
    """Validate one document; raise :class:`InvalidSpec` listing every problem."""
    errors: list[FieldError] = []
    data = doc.data
    if not isinstance(data, dict):
        raise_errors(
            [
                FieldError(
                    doc.source,
                    doc.line,
                    "",
                    "expected a document with apiVersion, kind, metadata and spec",
                )
            ]
        )
    api_version = data.get("apiVersion")
    if api_version != API_VERSION:
        message = (
            "required field is missing"
            if api_version is None
            else f"expected '{API_VERSION}', got {api_version!r}"
        )
        errors.append(FieldError(doc.source, doc.line_of(("apiVersion",)), "apiVersion", message))
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        valid = ", ".join(KINDS)
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        guess = f" (did you mean '{close[0]}'?)" if close else ""
        message = (
            "required field is missing; " if kind is None else f"unknown kind {kind!r}; "
        ) + f"valid kinds: {valid}{guess}"
        errors.append(FieldError(doc.source, doc.line_of(("kind",)), "kind", message))
        raise_errors(errors)
    assert isinstance(kind, str)
    try:
        resource = KINDS[kind].model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err["loc"]
            if loc == ("apiVersion",):
                continue
            errors.append(
                FieldError(doc.source, doc.line_of(loc), _dotted(loc), _friendly(kind, dict(err)))
            )
        raise_errors(errors)
        raise  # pragma: no cover - raise_errors raised
    raise_errors(errors)
    return resource


def validate_data(data: Any, source: str = "<request>") -> AnyResource:
    """Validate a document that arrived without a file (API requests)."""
    return validate_doc(SourceDoc(source, 1, data))


def load_text(text: str, source: str = "<stdin>") -> list[Loaded]:
    return check_unique([Loaded(validate_doc(d), d) for d in parse_yaml(text, source)])


def yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
    return [path]


def load_paths(paths: Iterable[str | Path]) -> list[Loaded]:
    """Load files and directories (``*.yaml``/``*.yml``, recursively) into resources."""
    loaded: list[Loaded] = []
    errors: list[FieldError] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise InvalidSpec(
                f"{raw}: no such file or directory", hint="check the path given to -f"
            )
        files = yaml_files(root)
        if not files:
            raise InvalidSpec(
                f"{raw}: no .yaml or .yml files in this directory",
                hint="point -f at a YAML file or a directory holding some",
            )
        for file in files:
            try:
                docs = parse_yaml(file.read_text(encoding="utf-8"), str(file))
                for doc in docs:
                    try:
                        loaded.append(Loaded(validate_doc(doc), doc))
                    except InvalidSpec as exc:
                        errors.extend(FieldError(**e) for e in exc.details["errors"])
            except InvalidSpec as exc:
                if "errors" not in exc.details:
                    raise
                errors.extend(FieldError(**e) for e in exc.details["errors"])
            except UnicodeDecodeError:
                errors.append(FieldError(str(file), 1, "", "not a UTF-8 text file"))
    raise_errors(errors)
    return check_unique(loaded)


def check_unique(loaded: list[Loaded]) -> list[Loaded]:
    seen: dict[tuple[str, str, str], Loaded] = {}
    errors: list[FieldError] = []
    for item in loaded:
        r = item.resource
        key = (r.kind, r.project, r.name)
        if key in seen:
            first = seen[key].doc
            errors.append(
                FieldError(
                    item.doc.source,
                    item.doc.line_of(("metadata", "name")),
                    "metadata.name",
                    f"duplicate {r.kind} '{r.name}' (first defined at {first.source}:"
                    f"{first.line_of(('metadata', 'name'))}); names must be unique per kind",
                )
            )
        else:
            seen[key] = item
    raise_errors(errors)
    return loaded
