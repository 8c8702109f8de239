"""Rules for the values of a parameter file, each with the JSON Schema it stands for.

A parameter file is read section by section (:class:`Section`), each key with a
:class:`Rule` that both checks a value and describes itself in JSON Schema, so the checks
the service applies and the schema ``/openapi.json`` publishes cannot drift apart. Every
number has a range; every text a length; every list a size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameters, excerpt

MAX_TEXT_CHARS = 200
MAX_LIST_ITEMS = 100


class Wrong(Exception):
    """What a value should have been; the section adds the key and the value."""


class Rule:
    def __call__(self, value):
        raise NotImplementedError

    def schema(self) -> dict:
        raise NotImplementedError


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Whole(Rule):
    minimum: int
    maximum: int

    def __call__(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Wrong(f"must be a whole number from {self.minimum} to {self.maximum}")
        if not self.minimum <= value <= self.maximum:
            raise Wrong(f"must be from {self.minimum} to {self.maximum}")
        return int(value)

    def schema(self):
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Number(Rule):
    """A finite number in [minimum, maximum]; ``exclusive_minimum`` makes it (minimum, ...]."""

    minimum: float
    maximum: float
    exclusive_minimum: bool = False

    def __call__(self, value):
        low = "(" if self.exclusive_minimum else "["
        allowed = f"must be a number in {low}{self.minimum:g}, {self.maximum:g}]"
        if not _is_number(value) or not math.isfinite(value):
            raise Wrong(allowed)
        too_low = value <= self.minimum if self.exclusive_minimum else value < self.minimum
        if too_low or value > self.maximum:
            raise Wrong(allowed)
        return float(value)

    def schema(self):
        bound = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
        return {"type": "number", bound: self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Flag(Rule):
    def __call__(self, value):
        if not isinstance(value, bool):
            raise Wrong("must be true or false")
        return value

    def schema(self):
        return {"type": "boolean"}


@dataclass(frozen=True)
class Text(Rule):
    """Text (numbers are taken as the text they were written as) of 1..max_chars."""

    max_chars: int = MAX_TEXT_CHARS
    forbidden: str = ""   # a substring the text must not contain
    why: str = ""

    def __call__(self, value):
        from .safe_yaml import written

        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise Wrong("must be text")
        text = written(value) if not isinstance(value, str) else value
        if not 1 <= len(text) <= self.max_chars:
            raise Wrong(f"must be 1 to {self.max_chars} characters")
        if self.forbidden and self.forbidden in text:
            raise Wrong(f"must not contain {self.forbidden!r}{self.why}")
        return text

    def schema(self):
        return {"type": "string", "minLength": 1, "maxLength": self.max_chars}


class OneOf(Rule):
    """One of ``choices`` (canonical names), or an alias of one, in any case; a trailing
    ``()`` is ignored, so the blog post's ``MinimalFCParameters()`` is an alias."""

    def __init__(self, choices, aliases: dict[str, str] | None = None):
        self.choices = tuple(choices)
        self.table = {c.lower(): c for c in self.choices}
        self.table.update({a.lower(): c for a, c in (aliases or {}).items()})

    def __call__(self, value):
        key = value.strip().lower().removesuffix("()") if isinstance(value, str) else None
        if key not in self.table:
            raise Wrong(f"must be one of: {', '.join(self.choices)}")
        return self.table[key]

    def schema(self):
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class Nullable(Rule):
    inner: Rule

    def __call__(self, value):
        return None if value is None else self.inner(value)

    def schema(self):
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


class AnyOf(Rule):
    """The first of ``rules`` that accepts the value."""

    def __init__(self, *rules: Rule, allowed: str):
        self.rules = rules
        self.allowed = allowed

    def __call__(self, value):
        for rule in self.rules:
            try:
                return rule(value)
            except Wrong:
                continue
        raise Wrong(self.allowed)

    def schema(self):
        return {"anyOf": [rule.schema() for rule in self.rules]}


@dataclass(frozen=True)
class ListOf(Rule):
    item: Rule
    max_items: int = MAX_LIST_ITEMS
    min_items: int = 1

    def __call__(self, value):
        if not isinstance(value, list) or not self.min_items <= len(value) <= self.max_items:
            raise Wrong(f"must be a list of {self.min_items} to {self.max_items} items")
        parsed = []
        for i, item in enumerate(value):
            try:
                parsed.append(self.item(item))
            except Wrong as wrong:
                raise Wrong(f"item {i + 1} {wrong}") from None
        return parsed

    def schema(self):
        return {"type": "array", "items": self.item.schema(), "minItems": self.min_items,
                "maxItems": self.max_items}


@dataclass(frozen=True)
class Field:
    name: str
    rule: Rule
    default: Any
    doc: str

    def schema(self) -> dict:
        described = {**self.rule.schema(), "description": self.doc}
        if self.default is not None and not callable(self.default):
            described["default"] = self.default
        return described


@dataclass(frozen=True)
class Section:
    """A mapping of known keys, read into a dict of checked values with defaults."""

    fields: tuple[Field, ...]
    doc: str = ""
    extra: dict = field(default_factory=dict)  # nested sections' schemas, by key

    def read(self, values, path: str) -> dict:
        values = expect_mapping(values, path)
        known = {f.name: f for f in self.fields}
        unknown = sorted(str(k) for k in values if k not in known and k not in self.extra)
        if unknown:
            where = f"in '{path}'" if path else "at the top level"
            raise InvalidParameters(
                f"Unknown key '{join(path, unknown[0][:40])}' {where}. Allowed: "
                f"{', '.join(sorted([*known, *self.extra]))}.")
        read = {}
        for name, rule_field in known.items():
            read[name] = check(rule_field.rule, values[name], join(path, name)) \
                if name in values else rule_field.default
        return read

    def schema(self) -> dict:
        properties = {f.name: f.schema() for f in self.fields}
        properties.update(self.extra)
        described = {"type": "object", "additionalProperties": False, "properties": properties}
        if self.doc:
            described["description"] = self.doc
        return described


def check(rule: Rule, value, path: str):
    """``rule(value)``, or a 400 naming the key, the rule and (an excerpt of) the value."""
    try:
        return rule(value)
    except Wrong as wrong:
        raise InvalidParameters(f"'{path}' {wrong} (got {excerpt(value)}).") from None


def expect_mapping(values, path: str) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InvalidParameters(f"'{path or 'params'}' must be a mapping of keys to values "
                                f"(got {excerpt(values)}).")
    return values


def join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)
