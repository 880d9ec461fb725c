"""YAML documents → validated resources, with errors that name file, line and field.

PyYAML's composer keeps the position of every node, so each value's line is known; after
pydantic validation each error's location is mapped back to the closest line.

The loader reads what anyone may write, so it is bounded (the ``MAX_*`` constants below,
listed in docs/security.md): the size of a file, the nesting, the aliases, the number of
values (a "billion laughs" file is refused, not expanded) and of documents and files. Only
plain data comes out of the YAML (no tags, no sets, no non-finite numbers), and every
problem is one :class:`InvalidSpec` whose message is ``FILE:LINE field: what is wrong``.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dockyard.errors import InvalidSpec
from dockyard.spec.common import API_VERSION, describe
from dockyard.spec.kinds import KINDS, AnyResource

Path_ = tuple[str | int, ...]
YAML_SUFFIXES = (".yaml", ".yml")

MAX_FILE_BYTES = 1 << 20
"""Largest spec file (1 MiB); a bigger one is refused before it is parsed."""
MAX_FILES = 1000
"""Most YAML files one ``-f`` directory may hold."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists in a document (with aliases expanded)."""
MAX_ALIASES = 100
"""Most uses of aliases (``*name``) in one file."""
MAX_VALUES = 200_000
"""Most values (mappings, lists, keys, scalars) in one load, each alias use counted as a copy.

This is what refuses a "billion laughs" file: ten aliases of ten aliases of … would expand
to a billion values, and the loader stops at this many instead of building them.
"""
MAX_DOCUMENTS = 10_000
"""Most documents in one load (all files given to one ``apply``/``delete``)."""
MAX_DIRECTORY_ENTRIES = 100_000
"""Most files and directories looked at under one ``-f`` directory."""
MAX_NUMBER_CHARS = 40
"""Longest number literal read; a longer one is an error before it is converted."""
MAX_REPORTED_ERRORS = 50
"""Most problems listed in one error (the count says how many there are in all)."""
MAX_MESSAGE_CHARS = 1000
"""Longest message of one problem; longer ones (a huge value quoted) are cut."""
MAX_PATH_CHARS = 300
"""Longest field path shown in a problem."""
MAX_SOURCE_CHARS = 1000
"""Longest file name shown in a problem."""


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
    """One problem: where (file, line, field path) and what is wrong.

    The texts are made printable on the way in (control characters, NUL and lone surrogates
    shown as escapes, long texts cut), so that any terminal and any JSON encoder takes them.
    """

    source: str
    line: int
    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", printable(self.source, MAX_SOURCE_CHARS))
        object.__setattr__(self, "path", printable(self.path, MAX_PATH_CHARS))
        object.__setattr__(self, "message", printable(self.message, MAX_MESSAGE_CHARS))

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


def printable(text: str, limit: int) -> str:
    """``text`` with every non-printable character escaped, cut to ``limit`` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def raise_errors(errors: list[FieldError], hidden: int = 0) -> None:
    """Raise one :class:`InvalidSpec` for ``errors`` (and ``hidden`` more left out), if any."""
    if errors:
        raise _invalid(errors, hidden)


def _invalid(errors: list[FieldError], hidden: int = 0) -> InvalidSpec:
    """The error listing ``errors``: the first MAX_REPORTED_ERRORS of them, and the count."""
    count = len(errors) + hidden
    shown = errors[:MAX_REPORTED_ERRORS]
    more = f"\n  … and {count - len(shown):,} more" if count > len(shown) else ""
    head = (
        str(errors[0])
        if count == 1
        else f"{count:,} problems:\n" + "\n".join(f"  {e}" for e in shown) + more
    )
    return InvalidSpec(
        head,
        hint="fix the file and apply it again; nothing was changed",
        details={"errors": [e.as_dict() for e in shown], "count": count},
    )


class _Refused(Exception):
    """A limit of the loader was hit at ``line``: the file is not read any further."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = int(mark.line) + 1 if mark is not None else 1
        self.message = message


@dataclass
class _Budget:
    """What one load (all files of one ``apply``) may still use."""

    values: int = 0
    composed: int = 0
    documents: int = 0

    def compose(self, mark: Any) -> None:
        self.composed += 1
        if self.composed > MAX_VALUES:
            raise _Refused(mark, _TOO_MANY_VALUES)

    def value(self, mark: Any) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Refused(mark, _TOO_MANY_VALUES)

    @property
    def spent(self) -> bool:
        """Whether a limit was hit: the load stops (the files after this one are not read)."""
        return max(self.values, self.composed) > MAX_VALUES or self.documents > MAX_DOCUMENTS

    def document(self, mark: Any) -> None:
        self.documents += 1
        if self.documents > MAX_DOCUMENTS:
            raise _Refused(mark, f"more than {MAX_DOCUMENTS:,} documents in one apply")


_TOO_MANY_VALUES = (
    f"more than {MAX_VALUES:,} values (mappings, lists, keys and scalars, every use of an "
    "alias counted as a copy); split the specs or use fewer aliases"
)


class _Alias(yaml.Node):
    """Where an alias (``*name``) is used; ``target`` is the anchored node it repeats."""

    def __init__(self, target: yaml.Node, anchor: str, mark: Any) -> None:
        super().__init__(target.tag, target.value, mark, mark)
        self.target = target
        self.anchor = anchor


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer with a nesting limit, an alias limit and a value budget.

    PyYAML composes nested nodes recursively and keeps the whole node tree: both are bounded
    here, while composing, before anything is converted.
    """

    def __init__(self, text: str, budget: _Budget) -> None:
        super().__init__(text)
        self.budget = budget
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(
                    event.start_mark, f"more than {MAX_ALIASES} aliases (*name) in one file"
                )
            target = super().compose_node(parent, index)
            assert target is not None  # an alias names a node (or PyYAML raised)
            return _Alias(target, str(event.anchor), event.start_mark)
        self.budget.compose(event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(event.start_mark, _TOO_DEEP)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels of mappings and lists"
_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (_TAG + t for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (_TAG + t for t in ("timestamp", "map", "seq", "merge"))
_PLAIN = "a spec holds mappings, lists, strings, numbers, true/false and null"


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Composer:
    """Turns composed YAML nodes into Python values while recording each value's line.

    Only plain data comes out: mappings with text keys, lists, strings, finite numbers,
    booleans and null. Anything else (``!!set``, ``!!binary``, ``!!python/…`` and other tags,
    merge keys, lists or mappings as keys, ``.inf``/``.nan``, numbers of more than
    MAX_NUMBER_CHARS characters) is an error at its line; an alias that contains itself, too
    deep a nesting or too many values stop the file with :class:`_Refused`.
    """

    def __init__(self, source: str, budget: _Budget | None = None) -> None:
        self.source = source
        self.budget = budget or _Budget()
        self.constructor = yaml.constructor.SafeConstructor()
        self.errors: list[FieldError] = []

    def error(self, node: yaml.Node, path: Path_, message: str) -> None:
        self.errors.append(
            FieldError(self.source, node.start_mark.line + 1, _dotted(path), message)
        )

    def convert(
        self,
        node: yaml.Node,
        path: Path_,
        lines: dict[Path_, int],
        within: frozenset[int] = frozenset(),
        alias: Any = None,
    ) -> Any:
        """``node`` as plain data; ``within``: the collections being converted around it;
        ``alias``: where the alias whose expansion this is was used (limits point there)."""
        lines[path] = node.start_mark.line + 1
        if isinstance(node, _Alias) and alias is None:
            alias = node.start_mark
        self.budget.value(alias or node.start_mark)
        if len(path) >= MAX_DEPTH:  # an alias can repeat a deep value deeper down
            raise _Refused(alias or node.start_mark, _TOO_DEEP)
        used = node
        if isinstance(node, _Alias):
            node = node.target
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in within:
                name = used.anchor if isinstance(used, _Alias) else "?"
                raise _Refused(
                    used.start_mark,
                    f"the alias *{name} is used inside the value it names (a recursive alias)",
                )
            within = within | {id(node)}
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                self.error(used, path, f"unsupported tag {_short_tag(node.tag)}: {_PLAIN}")
                return None
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node, path)
                if key is None:
                    continue
                if key in out:
                    self.error(
                        key_node,
                        (*path, key),
                        f"duplicate key {describe(key)} (first at line {lines[(*path, key)]})",
                    )
                    continue
                self.budget.value(alias or key_node.start_mark)
                lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, (*path, key), lines, within, alias)
                lines[(*path, key)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                self.error(used, path, f"unsupported tag {_short_tag(node.tag)}: {_PLAIN}")
                return None
            return [
                self.convert(item, (*path, i), lines, within, alias)
                for i, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(used, node, path)

    def key(self, key_node: yaml.Node, path: Path_) -> str | None:
        """A key is text: a plain ``1``, ``true`` or ``null`` key is the text as written."""
        node = key_node.target if isinstance(key_node, _Alias) else key_node
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _MERGE:
                self.error(
                    key_node, path, "merge keys ('<<') are not supported; write the keys out"
                )
                return None
            if node.tag in (_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP):
                return str(node.value)
            self.error(key_node, path, f"unsupported tag {_short_tag(node.tag)}: {_PLAIN}")
            return None
        what = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        if node.tag not in (_MAP, _SEQ):
            what = f"a {_short_tag(node.tag)}"
        self.error(key_node, path, f"expected a text key, got {what} as a key")
        return None

    def scalar(self, used: yaml.Node, node: yaml.ScalarNode, path: Path_) -> Any:
        tag, text = node.tag, str(node.value)
        if tag in (_STR, _TIMESTAMP):  # dates stay the text written: JSON has none
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:  # implicit true/false/yes/no/on/off, or any text tagged !!bool
            value = self.constructor.bool_values.get(text.lower())
            if value is None:
                self.error(used, path, f"expected true or false, got {describe(text)}")
            return value
        if tag in (_INT, _FLOAT):
            if len(text) > MAX_NUMBER_CHARS:
                self.error(
                    used,
                    path,
                    f"a number of {len(text):,} characters; numbers in a spec have at most "
                    f"{MAX_NUMBER_CHARS} (write it in quotes if it is text)",
                )
                return None
            try:
                number = (
                    self.constructor.construct_yaml_int(node)
                    if tag == _INT
                    else self.constructor.construct_yaml_float(node)
                )
            except (ValueError, OverflowError, LookupError):  # text tagged !!int or !!float
                self.error(used, path, f"expected a number, got {describe(text)}")
                return None
            if isinstance(number, float) and not math.isfinite(number):
                self.error(
                    used,
                    path,
                    f"expected a finite number, got {text} (write it in quotes if it is text)",
                )
                return None
            return number
        self.error(used, path, f"unsupported tag {_short_tag(tag)}: {_PLAIN}")
        return None


def parse_yaml(
    text: str, source: str = "<stdin>", budget: _Budget | None = None
) -> list[SourceDoc]:
    """Split a multi-document YAML text into documents with line maps.

    Bounded: at most MAX_FILE_BYTES of text, MAX_DEPTH levels, MAX_ALIASES aliases and,
    shared by all files of one load (``budget``), MAX_VALUES values and MAX_DOCUMENTS
    documents. Every problem is an :class:`InvalidSpec` naming the file and the line.
    """
    composer = _Composer(source, budget)
    docs: list[SourceDoc] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise_errors([FieldError(source, 1, "", _too_large(size))])
    try:
        loader = _BoundedLoader(text, composer.budget)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
                    continue  # an empty document (a trailing '---')
                composer.budget.document(node.start_mark)
                lines: dict[Path_, int] = {}
                data = composer.convert(node, (), lines)
                docs.append(SourceDoc(source, node.start_mark.line + 1, data, lines))
        finally:
            loader.dispose()
    except _Refused as exc:
        raise_errors([*composer.errors, FieldError(source, exc.line, "", exc.message)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise_errors([FieldError(source, line, "", f"invalid YAML: {exc.problem or exc}")])
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"the character U+{ord(char):04X} is not allowed in a YAML file"
        raise_errors([FieldError(source, line, "", message)])
    raise_errors(composer.errors)
    return docs


def _too_large(size: int) -> str:
    return (
        f"{size:,} bytes; a spec file is at most {MAX_FILE_BYTES:,} bytes "
        f"({MAX_FILE_BYTES >> 20} MiB)"
    )


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


def _field_schema(kind: str, loc: Sequence[str | int]) -> dict[str, Any]:
    if kind not in _SCHEMAS:
        _SCHEMAS[kind] = KINDS[kind].model_json_schema(by_alias=True)
    schema = _SCHEMAS[kind]
    return _schema_at(schema, schema, loc)


def _valid_fields(kind: str, loc: Sequence[str | int]) -> list[str]:
    return sorted(_field_schema(kind, loc).get("properties", {}))


def _friendly(kind: str, err: dict[str, Any]) -> str:
    etype, got = err["type"], err.get("input")
    shown = describe(got)
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
        "int_parsing_size": "expected an integer of at most 19 digits",
        "finite_number": "expected a finite number",
        "int_type": "expected an integer",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "string_unicode": "expected UTF-8 text",
        "list_type": "expected a list",
        "dict_type": "expected a mapping (key: value)",
        "model_type": "expected a mapping (key: value)",
        "model_attributes_type": "expected a mapping (key: value)",
    }
    if etype in ("float_parsing", "float_type") and isinstance(got, int):
        maximum = _field_schema(kind, loc).get("maximum")  # an integer too large for a float
        if maximum is not None:
            return f"expected a number ≤ {maximum}, got {shown}"
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
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"expected a number {bounds[etype]} {limit}, got {shown}"
    if etype == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got {shown}"
    if etype == "too_long":
        count = len(got) if isinstance(got, list | dict) else "more"
        return f"expected at most {ctx.get('max_length')} item(s), got {count}"
    if etype == "string_too_long":
        size = len(got) if isinstance(got, str) else "more"
        return f"expected at most {ctx.get('max_length')} characters, got {size}"
    if etype == "string_too_short":
        return f"expected at least {ctx.get('min_length')} character(s), got {shown}"
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
            if err["type"] == "text":  # the bad string sits inside the field: point at it
                loc = (*loc, *err.get("ctx", {}).get("at", ()))
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
    """``path`` itself, or the ``*.yaml``/``*.yml`` files under the directory ``path``.

    A directory is walked without following links to other directories, looking at no more
    than MAX_DIRECTORY_ENTRIES entries and keeping no more than MAX_FILES files.
    """
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    for seen, p in enumerate(path.rglob("*"), start=1):
        if seen > MAX_DIRECTORY_ENTRIES:
            raise InvalidSpec(
                f"{path}: more than {MAX_DIRECTORY_ENTRIES:,} files and directories to look at",
                hint="point -f at the directory of your specs, or at the files themselves",
            )
        if p.suffix in YAML_SUFFIXES and p.is_file():
            found.append(p)
            if len(found) > MAX_FILES:
                raise InvalidSpec(
                    f"{path}: more than {MAX_FILES:,} YAML files",
                    hint="apply the specs in smaller directories",
                )
    return sorted(found)


def read_spec_file(path: Path) -> str:
    """The text of one spec file, or an :class:`InvalidSpec` naming the file.

    Only a regular file is read (a FIFO or a device given by mistake would block or never
    end: it is refused without waiting for a writer), at most MAX_FILE_BYTES of it, and it
    must be UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _invalid([FieldError(str(path), 1, "", f"cannot read it: {exc.strerror}")]) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _invalid(
                [FieldError(str(path), 1, "", "not a regular file (a FIFO, device or socket)")]
            )
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        size = max(len(data), os.stat(path).st_size)
        raise _invalid([FieldError(str(path), 1, "", _too_large(size))])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; "
            "save the file as UTF-8"
        )
        raise _invalid([FieldError(str(path), line, "", message)]) from None


def load_paths(paths: Iterable[str | Path]) -> list[Loaded]:
    """Load files and directories (``*.yaml``/``*.yml``, recursively) into resources.

    Each file must hold at least one document; all files share one budget of values and
    documents (MAX_VALUES, MAX_DOCUMENTS).
    """
    loaded: list[Loaded] = []
    errors: list[FieldError] = []
    hidden = 0  # problems counted but not listed (past MAX_REPORTED_ERRORS in one file)
    budget = _Budget()
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
                docs = parse_yaml(read_spec_file(file), str(file), budget)
                if not docs:
                    errors.append(FieldError(str(file), 1, "", _EMPTY))
                for doc in docs:
                    try:
                        loaded.append(Loaded(validate_doc(doc), doc))
                    except InvalidSpec as exc:
                        hidden += _collect(exc, errors)
            except InvalidSpec as exc:
                if "errors" not in exc.details:
                    raise
                hidden += _collect(exc, errors)
            if budget.spent:
                break
        if budget.spent:
            break
    raise_errors(errors, hidden)
    return check_unique(loaded)


_EMPTY = "the file is empty: no documents in it (only blank lines, comments or '---')"


def _collect(exc: InvalidSpec, errors: list[FieldError]) -> int:
    """Add the problems ``exc`` lists to ``errors``; answer how many it counted but left out."""
    listed = [FieldError(**e) for e in exc.details["errors"]]
    errors.extend(listed)
    return int(exc.details.get("count", len(listed))) - len(listed)


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
