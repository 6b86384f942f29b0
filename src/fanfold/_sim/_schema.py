"""Filler that fits a JSON schema: the simulated provider's structured output.

The value is deterministic and small: objects carry their properties (only the required ones
when deeply nested), arrays hold one item (or ``minItems``), enums and consts give their first
value, ``anyOf``/``oneOf`` their first branch (the ``null`` branch when deep in a recursive
schema), ``$ref`` is resolved against ``$defs``/``definitions``, numbers respect their bounds
and ``multipleOf``, strings their length and a sane value for common formats. ``pattern`` is
not honoured.

>>> fill_schema({"type": "array", "items": {"enum": ["red", "green"]}, "minItems": 2})
['red', 'red']
>>> fill_schema({"type": "string", "format": "date"})
'2024-01-01'
>>> fill_schema({"anyOf": [{"type": "number", "exclusiveMinimum": 1, "maximum": 2}, {"type": "null"}]})
1.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "binary": "data",
    "base64": "ZGF0YQ==",
}

# Beyond this depth only required properties are filled and the null branch of a union is
# preferred, so a recursive schema (a tree of nodes) ends.
_SHALLOW = 4


def fill_schema(schema: Mapping[str, Any]) -> Any:
    """A value that validates against ``schema`` (see the module docstring for the rules)."""
    return _Filler(schema).fill(schema, 0)


class _Filler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, ref: str) -> Mapping[str, Any]:
        if not ref.startswith("#"):
            return {}  # a remote reference: anything goes
        node: Any = self.root
        for part in ref.lstrip("#").split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node if isinstance(node, Mapping) else {}

    def fill(self, schema: Mapping[str, Any] | bool, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return "text"  # `true` accepts anything
        if depth > 64:
            return None
        if "$ref" in schema:
            merged = {**self.resolve(schema["$ref"]), **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.fill(merged, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.fill(self._branch(schema[key], depth), depth + 1)
        if schema.get("allOf"):
            return self._all_of(schema, depth)
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return _string(schema)
        if kind == "integer":
            return _integer(schema)
        if kind == "number":
            return _number(schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return "text"

    def _branch(self, branches: list[Any], depth: int) -> Any:
        if depth > _SHALLOW:
            for branch in branches:
                if isinstance(branch, Mapping) and branch.get("type") == "null":
                    return branch
        return branches[0]

    def _all_of(self, schema: Mapping[str, Any], depth: int) -> Any:
        values = [self.fill(part, depth + 1) for part in schema["allOf"]]
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if rest.get("properties") or rest.get("type") == "object":
            values.append(self._object(rest, depth))
        if values and all(isinstance(v, dict) for v in values):
            merged: dict[str, Any] = {}
            for value in values:
                merged.update(value)
            return merged
        return values[0]

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        names = [n for n in properties if depth <= _SHALLOW or n in required]
        value = {name: self.fill(properties[name], depth + 1) for name in names}
        for name in required - set(value):  # required but undeclared: anything goes
            value[name] = "text"
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and depth <= _SHALLOW:
            names_schema = schema.get("propertyNames")
            key = self.fill(names_schema, depth + 1) if isinstance(names_schema, Mapping) else "key"
            value[key if isinstance(key, str) else "key"] = self.fill(extra, depth + 1)
        return value

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if prefix:
            return [self.fill(item, depth + 1) for item in prefix]
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        count = max(1, low) if (depth <= _SHALLOW or low > 0) else 0
        if high is not None:
            count = min(count, int(high))
        items = schema.get("items", {})
        return [self.fill(items, depth + 1) for _ in range(count)]


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[0] if kinds else None
    if kind is None:
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
    return kind if isinstance(kind, str) else None


def _string(schema: Mapping[str, Any]) -> str:
    text = _FORMATS.get(schema.get("format", ""), "text")
    low = int(schema.get("minLength", 0))
    if len(text) < low:
        text += "x" * (low - len(text))
    high = schema.get("maxLength")
    if high is not None and len(text) > int(high):
        text = text[: int(high)]
    return text


def _bounds(schema: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    low, low_open = -math.inf, False
    high, high_open = math.inf, False
    if "minimum" in schema:
        low = float(schema["minimum"])
    exclusive_low = _numeric(schema.get("exclusiveMinimum"))  # a number since draft 6 (a flag before)
    if exclusive_low is not None and exclusive_low >= low:
        low, low_open = exclusive_low, True
    if "maximum" in schema:
        high = float(schema["maximum"])
    exclusive_high = _numeric(schema.get("exclusiveMaximum"))
    if exclusive_high is not None and exclusive_high <= high:
        high, high_open = exclusive_high, True
    return low, high, low_open, high_open


def _numeric(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(schema: Mapping[str, Any]) -> int:
    low, high, low_open, high_open = _bounds(schema)
    step = schema.get("multipleOf")
    step = int(step) if isinstance(step, (int, float)) and step >= 1 and float(step).is_integer() else 1
    first = math.floor(low) + 1 if low_open else math.ceil(low) if low != -math.inf else None
    last = math.ceil(high) - 1 if high_open else math.floor(high) if high != math.inf else None
    value = 0
    if first is not None and value < first:
        value = first
    elif last is not None and value > last:
        value = last
    if value % step:  # the nearest multiple inside the bounds, going up unless that leaves them
        up = value + (step - value % step)
        value = up if last is None or up <= last else value - value % step
    return value


def _number(schema: Mapping[str, Any]) -> float | int:
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and float(step).is_integer() and step >= 1:
        return _integer(schema)
    low, high, low_open, high_open = _bounds(schema)
    if (low < 0 or (low == 0 and not low_open)) and (high > 0 or (high == 0 and not high_open)):
        value = 0.0
    elif low != -math.inf and high != math.inf:
        value = low if not low_open else (low + high) / 2
    elif low != -math.inf:
        value = low + 1 if low_open else low
    else:
        value = high - 1 if high_open else high
    if isinstance(step, (int, float)) and step > 0 and not (value / step).is_integer():
        value = math.ceil(value / step) * step
    return value
