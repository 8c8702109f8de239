"""YAML for parameter files: safe, small and literal.

``yaml.safe_load`` never runs code, but it will still expand an alias bomb, recurse into a
thousand nested brackets, build a 5,000-digit integer, take ``1:30`` for 90 and ``010`` for 8,
and let a second ``pipeline_id:`` silently win. This loader refuses what a parameter file has
no use for, before any of it costs memory or time:

* anchors and aliases (``&a``, ``*a``), explicit tags other than the plain ones, merge keys;
* nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values, a file over
  :data:`MAX_BYTES`, a number written with more than :data:`MAX_NUMBER_CHARS` characters;
* the same key twice in one mapping.

Scalars resolve as in YAML 1.2's core schema, minus octal and hexadecimal: ``true``/``false``,
``null``/``~``, decimal integers, decimal floats and ``.inf``/``.nan``; everything else is text
(``yes``, ``on``, ``0x1F``, ``1:30`` and ``2024-01-31`` included). Integers and floats
remember how they were written (:class:`WrittenInt`, :class:`WrittenFloat`), so a
``pipeline_id: 010`` is the id ``"010"``.
"""
from __future__ import annotations

import re

import yaml

MAX_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_NODES = 20_000
MAX_NUMBER_CHARS = 40

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

STR, INT, FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
BOOL, NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
MAP, SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class Refused(yaml.YAMLError):
    """YAML this loader does not accept, with a message saying why."""


class WrittenInt(int):
    """An integer that keeps the text it was written as (``010``, ``+7``)."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, int(text))
        number.text = text
        return number


class WrittenFloat(float):
    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, _yaml_float(text))
        number.text = text
        return number


def written(value) -> str:
    """How a scalar was written in the file (its text for numbers, else ``str``)."""
    return getattr(value, "text", None) or str(value)


def _yaml_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return float("-inf") if lowered.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    return float(text)


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers: dict = {}  # only the resolvers added below
    yaml_constructors: dict = {}

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise Refused(f"anchors and aliases (&name, *name) are not accepted "
                          f"({_where(event)})")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!", STR, INT, FLOAT, BOOL, NULL, MAP, SEQ):
            raise Refused(f"the tag {tag[:40]!r} is not accepted ({_where(event)}); write "
                          "plain values")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise Refused(f"more than {MAX_NODES} values")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(f"nested more than {MAX_DEPTH} levels deep ({_where(event)})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise Refused(f"a mapping key must be a plain value ({_where(key_node)})")
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise Refused(f"the key {key_node.value[:40]!r} is given twice in one mapping "
                              f"({_where(key_node)}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_number(self, node, kind):
        text = self.construct_scalar(node)
        if len(text) > MAX_NUMBER_CHARS:
            raise Refused(f"a number written with more than {MAX_NUMBER_CHARS} characters "
                          f"({_where(node)})")
        try:
            return kind(text)
        except ValueError:
            raise Refused(f"{text[:40]!r} is not a {'whole number' if kind is WrittenInt else 'number'} "
                          f"({_where(node)})") from None


def _where(thing) -> str:
    mark = getattr(thing, "start_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"


for _tag, _pattern, _first in (
        (BOOL, _BOOL, "tTfF"), (NULL, _NULL, ["~", "n", "N", ""]),
        (INT, _INT, "-+0123456789"), (FLOAT, _FLOAT, "-+0123456789.")):
    _Loader.add_implicit_resolver(_tag, _pattern, list(_first))

_Loader.add_constructor(STR, yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor(BOOL, yaml.SafeLoader.construct_yaml_bool)
_Loader.add_constructor(NULL, yaml.SafeLoader.construct_yaml_null)
_Loader.add_constructor(MAP, yaml.SafeLoader.construct_yaml_map)
_Loader.add_constructor(SEQ, yaml.SafeLoader.construct_yaml_seq)
_Loader.add_constructor(INT, lambda loader, node: loader.construct_number(node, WrittenInt))
_Loader.add_constructor(FLOAT, lambda loader, node: loader.construct_number(node, WrittenFloat))
_Loader.add_constructor(None, yaml.SafeLoader.construct_undefined)


def parse(text: str):
    """The document in ``text``, or ``Refused``/``yaml.YAMLError`` saying what is wrong."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise Refused(f"the file is larger than {MAX_BYTES // 1024} KB")
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # deep structures PyYAML's scanner meets before the composer
        raise Refused(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
