"""Strict decoding helpers: JSON and YAML that refuse duplicate keys, and typed field access. Pure, no I/O.

Every failure is an ``api.errors.ConfigError`` whose ``field`` is the path of the offending value
(``parameters.sharing.mpsConfig``), so a user can find it in the manifest.

Parsing is bounded like the API server's: documents of at most 3 MiB and 64 levels of objects and lists,
integers of at most 64 digits, YAML aliases that neither contain themselves nor add more than 100,000
nodes. Nothing here recurses deeper than those 64 levels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import yaml

from api.errors import ConfigError

MAX_DOCUMENT_BYTES = 3 * 1024 * 1024  # the API server's request size limit
MAX_DEPTH = 64  # levels of objects and lists (the API server's CBOR decoder allows 64 too)
MAX_ALIAS_NODES = 100_000  # nodes that YAML aliases may add to a document, once expanded
MAX_NUMBER_DIGITS = 64  # an int64 has 19 digits; a longer integer is a mistake or an attack
_INT_TAG = "tag:yaml.org,2002:int"


def shown(text: str, limit: int = 40) -> str:
    """``repr`` of a user's text, cut to ``limit`` characters so that messages stay readable."""
    return repr(text) if len(text) <= limit else f"{text[: limit - 1] + '…'!r} ({len(text)} characters)"


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as the parser saw it: every key, duplicates included, in order."""


class _Refused(str):
    """A JSON value kept as its text for ``_undup`` to refuse with its path: ``reason`` says why."""

    reason = ""


class _LongNumber(_Refused):
    reason = f"is out of range: an integer of at most {MAX_NUMBER_DIGITS} digits"


class _Constant(_Refused):
    reason = "is not a JSON value (NaN and Infinity are not numbers in JSON)"


def _number(text: str) -> int | _LongNumber:
    """An integer, without ``int()`` of a long digit string (slow, refused over 4,300 digits)."""
    return int(text) if len(text.lstrip("-")) <= MAX_NUMBER_DIGITS else _LongNumber(text)


def _too_deep(field: str, limit: int) -> ConfigError:
    return ConfigError(field, f"nested too deeply: more than {limit} levels of objects and lists")


def _undup(value: Any, field: str, depth: int, limit: int, duplicates: list[str]) -> Any:
    """Plain values from the parser's; each duplicate key's path is added to ``duplicates`` (the last wins)."""
    if isinstance(value, _Pairs | list) and depth > limit:
        raise _too_deep(field, limit)
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            path = f"{field}.{key}" if field else key
            if key in out:
                duplicates.append(path)
            out[key] = _undup(item, path, depth + 1, limit, duplicates)
        return out
    if isinstance(value, list):
        return [_undup(item, f"{field}[{i}]", depth + 1, limit, duplicates) for i, item in enumerate(value)]
    if isinstance(value, _Refused):
        raise ConfigError(field, f"{shown(value)} {value.reason}")
    return value


def parse_json(data: bytes | str, field: str, max_depth: int = MAX_DEPTH) -> tuple[Any, list[str]]:
    """Parse JSON text of at most ``MAX_DOCUMENT_BYTES`` (characters, for text) and ``max_depth`` levels.

    Returns the value (of duplicate keys, the last wins, as in the API server) and the path of each
    duplicate key below ``field``. ``NaN``/``Infinity`` and integers of more than ``MAX_NUMBER_DIGITS``
    digits are refused. Every failure is a ``ConfigError`` naming ``field`` or the path below it.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConfigError(field, f"is too large: {len(data)} bytes, at most {MAX_DOCUMENT_BYTES} (3 MiB)")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        parsed = json.loads(text, object_pairs_hook=_Pairs, parse_int=_number, parse_constant=_Constant)
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"is not UTF-8 text: {e}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(field, f"is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e
    except RecursionError as e:  # the C parser recurses once per level: far more than max_depth levels
        raise _too_deep(field, max_depth) from e
    duplicates: list[str] = []
    return _undup(parsed, field, 1, max_depth, duplicates), duplicates


def loads_json(data: bytes | str, field: str) -> Any:
    """``parse_json``, and a duplicate key anywhere is an error naming the key's path below ``field``."""
    value, duplicates = parse_json(data, field)
    if duplicates:
        raise ConfigError(duplicates[0], "duplicate key; each key may appear only once in an object")
    return value


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits, checked while composing (before anything is constructed).

    Refused, with a ``ConfigError`` naming the path in the document: nesting deeper than ``MAX_DEPTH``
    (aliases expanded), an alias inside the node it refers to (``a: &a [*a]``), aliases adding more than
    ``MAX_ALIAS_NODES`` nodes (billion laughs), integers of more than ``MAX_NUMBER_DIGITS`` characters.
    Scalars that PyYAML cannot construct (``!!int a``, ``2020-13-45``) are ``yaml.YAMLError``s, as its
    other refusals are, instead of the ValueError or KeyError it raises for them.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.document = -1
        self._path: list[str] = []  # of the node being composed: ".spec", ".config", "[0]", ...
        self._open: set[str] = set()  # anchors of the nodes being composed

    def where(self) -> str:
        return f"<document {self.document}>" + "".join(self._path)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Stop the scanner at the 65th unclosed ``[``/``{``: it looks ahead of the composer."""
        if self.flow_level >= MAX_DEPTH:
            mark = self.get_mark()
            raise ConfigError(
                "<yaml>",
                f"nested too deeply: more than {MAX_DEPTH} levels of objects and lists "
                f"(line {mark.line + 1}, column {mark.column + 1})",
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_document(self) -> yaml.Node | None:
        self.document += 1
        node = super().compose_document()
        if node is not None:
            _Measure(self.where()).check(node)
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if isinstance(index, yaml.ScalarNode):
            self._path.append(f".{index.value}")
        elif isinstance(index, int):
            self._path.append(f"[{index}]")
        else:
            self._path.append("")  # a mapping key
        try:
            return self._compose(parent, index)
        finally:
            self._path.pop()

    def _compose(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise ConfigError(self.where(), f"alias *{event.anchor} is inside the node it refers to")
            return super().compose_node(parent, index)
        if not isinstance(event, yaml.ScalarEvent) and len(self._path) > MAX_DEPTH:
            raise _too_deep(self.where(), MAX_DEPTH)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.discard(anchor)

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        node = super().compose_scalar_node(anchor)
        if node.tag == _INT_TAG and len(node.value) > MAX_NUMBER_DIGITS:
            raise ConfigError(
                self.where(), f"a number of {len(node.value)} characters is out of range (at most {MAX_NUMBER_DIGITS})"
            )
        return node


def _checked(construct: Callable[[yaml.SafeLoader, Any], Any]) -> Callable[[yaml.SafeLoader, Any], Any]:
    """A PyYAML scalar constructor whose failures on bad text (``!!int a``, ``2020-13-45``) are YAML errors."""

    def run(loader: yaml.SafeLoader, node: Any) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, IndexError, KeyError, AttributeError, OverflowError) as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown(str(node.value))} is not a valid {node.tag}", node.start_mark
            ) from e

    return run


for _tag, _construct in (
    (_INT_TAG, yaml.constructor.SafeConstructor.construct_yaml_int),
    ("tag:yaml.org,2002:float", yaml.constructor.SafeConstructor.construct_yaml_float),
    ("tag:yaml.org,2002:bool", yaml.constructor.SafeConstructor.construct_yaml_bool),
    ("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_timestamp),
):
    _BoundedLoader.add_constructor(_tag, _checked(_construct))


class _Measure:
    """Depth and size of a composed YAML document with aliases expanded, each node visited once."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.seen: dict[int, tuple[int, int]] = {}  # id(node) -> (levels of collections, nodes), aliases expanded
        self.cap = MAX_DOCUMENT_BYTES + MAX_ALIAS_NODES + 1  # sizes saturate here: more nodes than text

    def check(self, root: yaml.Node) -> None:
        _, size = self._visit(root, 1)
        if size - len(self.seen) > MAX_ALIAS_NODES:
            raise ConfigError(self.field, f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes")

    def _visit(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        """(levels, nodes) of ``node`` found at ``depth``; recursion stops at ``MAX_DEPTH`` collections."""
        known = self.seen.get(id(node))
        if known is None:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                known = self.seen[id(node)] = (0, 1)
                return known
            if depth > MAX_DEPTH:
                raise self._too_deep(node)
            levels, size = 1, 1
            for child in children:
                child_levels, child_size = self._visit(child, depth + 1)
                levels, size = max(levels, child_levels + 1), min(size + child_size, self.cap)
            known = self.seen[id(node)] = (levels, size)
        if depth + known[0] - 1 > MAX_DEPTH:
            raise self._too_deep(node)
        return known

    def _too_deep(self, node: yaml.Node) -> ConfigError:
        line = node.start_mark.line + 1
        return ConfigError(
            self.field,
            f"nested too deeply: more than {MAX_DEPTH} levels of objects and lists, aliases expanded (line {line})",
        )


def yaml_documents(
    text: str, inspect: Callable[[int, yaml.Node], None] | None = None
) -> Iterator[tuple[int, yaml.Node, Any]]:
    """(index, composed node, value) of each non-empty document of a YAML stream, within the limits above.

    ``inspect(index, node)`` sees each composed node before it is constructed (construction rewrites
    merge keys). Raises ``ConfigError`` for a stream over ``MAX_DOCUMENT_BYTES`` characters and for the
    limits of ``_BoundedLoader``; PyYAML's own errors (``yaml.YAMLError``) for text that is not YAML.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ConfigError("<yaml>", f"is too large: {len(text)} characters, at most {MAX_DOCUMENT_BYTES} (3 MiB)")
    loader = _BoundedLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                if inspect is not None:
                    inspect(loader.document, node)
                yield loader.document, node, loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml_node(node: yaml.Node, field: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{field}.{key}"
            if key in seen:
                mark = key_node.start_mark
                raise ConfigError(
                    path, f"duplicate key (line {mark.line + 1}, column {mark.column + 1}); each key may appear once"
                )
            seen.add(key)
            _check_yaml_node(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_yaml_node(item, f"{field}[{i}]")


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (``---`` separated), refusing duplicate keys (PyYAML keeps the last)
    and anything beyond the limits of ``yaml_documents``."""
    out = []
    try:
        for _, _, value in yaml_documents(text, lambda i, node: _check_yaml_node(node, f"<document {i}>")):
            if value is not None:
                out.append(value)
    except yaml.YAMLError as e:
        raise ConfigError("<yaml>", f"is not valid YAML: {e}") from e
    return out


def int_text(value: int) -> str:
    """An integer as text; one too long to print (``str()`` refuses over 4,300 digits) by its size."""
    if value.bit_length() <= 256:
        return str(value)
    return f"{'-' if value < 0 else ''}2**{value.bit_length() - 1} or {'less' if value < 0 else 'more'}"


def type_name(value: object) -> str:
    """How a JSON/YAML value reads to a user: ``string "50"``, ``integer 5``, ``list``, ``object``."""
    match value:
        case None:
            return "null"
        case bool():
            return f"boolean {str(value).lower()}"
        case int():
            return f"integer {int_text(value)}"
        case float():
            return f"number {value}"
        case str():
            if len(value) <= 60:
                return f"string {json.dumps(value)}"
            return f"string {json.dumps(value[:59])}… ({len(value)} characters)"
        case Mapping():
            return "object"
        case list() | tuple():
            return "list"
    return type(value).__name__


def want_mapping(value: object, field: str, what: str = "an object") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be {what}, got {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{field}.{key}", f"keys must be strings, got {type_name(key)}")
    return value


def check_keys(obj: Mapping[str, Any], allowed: Collection[str], field: str) -> None:
    """Unknown keys are errors that name the key and list the valid ones."""
    for key in obj:
        if key not in allowed:
            raise ConfigError(f"{field}.{key}", f"unknown field; valid fields: {', '.join(sorted(allowed))}")


def want_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"must be a string, got {type_name(value)}")
    return value


def want_int(value: object, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f" ({minimum}..{maximum})"
    elif minimum is not None:
        bounds = f" (>= {minimum})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON writers may emit 50.0 for 50
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(field, f"must be an integer{bounds}, got {type_name(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(field, f"must be an integer{bounds}, got {int_text(value)}")
    return value


def want_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be a boolean, got {type_name(value)}")
    return value


def want_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(field, f"must be a list, got {type_name(value)}")
    return list(value)


def want_str_list(value: object, field: str) -> tuple[str, ...]:
    return tuple(want_str(item, f"{field}[{i}]") for i, item in enumerate(want_list(value, field)))


def want_choice(value: object, field: str, choices: Collection[str], what: str) -> str:
    text = want_str(value, field)
    if text not in choices:
        raise ConfigError(field, f"unknown {what} {shown(text)}; valid: {', '.join(choices)}")
    return text


def required(obj: Mapping[str, Any], key: str, field: str, hint: str = "") -> Any:
    if key not in obj or obj[key] is None:
        raise ConfigError(f"{field}.{key}", f"required{'; ' + hint if hint else ''}")
    return obj[key]
