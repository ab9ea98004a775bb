"""The Engine API's `filters` query parameter (pure): parsing, validation and matching as
moby's filters package does them, plus docker's timestamp syntax for `until`/`since`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

from dockyard.errors import InvalidParameter
from dockyard.image.changes import parse_duration


def _invalid(name: str = "", values: Iterable[str] | None = None) -> InvalidParameter:
    msg = "invalid filter"
    if name:
        msg += " '" + name
        if values is not None:
            msg += "=[" + " ".join(values) + "]"
        msg += "'"
    return InvalidParameter(msg)


class Filters:
    """key → set of values. Both JSON shapes are accepted: {"k": {"v": true}} and the older
    {"k": ["v"]}."""

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self.fields: dict[str, set[str]] = {k: set(v) for k, v in (fields or {}).items()}

    @classmethod
    def from_json(cls, text: str | None) -> Filters:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            raise _invalid() from None
        if not isinstance(raw, dict):
            raise _invalid()
        fields: dict[str, set[str]] = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                fields[key] = {v for v, on in values.items() if on}
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                fields[key] = set(values)
            else:
                raise _invalid()
        return cls(fields)

    def to_json(self) -> str:
        return json.dumps({k: {v: True for v in sorted(vs)} for k, vs in self.fields.items()})

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for name in self.fields:
            if name not in allowed:
                raise _invalid(name)

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return sorted(self.fields.get(key, ()))

    def get_bool(self, key: str, default: bool) -> bool:
        if key not in self.fields:
            return default
        values = self.fields[key]
        if not values:
            raise _invalid(key, [])
        false = "0" in values or "false" in values
        true = "1" in values or "true" in values
        if false == true:
            raise _invalid(key, self.get(key))
        return true

    def match_kv(self, key: str, labels: Mapping[str, str] | None) -> bool:
        """Every `k` or `k=v` value of the filter holds in labels (AND)."""
        wanted = self.fields.get(key)
        if not wanted:
            return True
        if not labels:
            return False
        for value in wanted:
            name, eq, expected = value.partition("=")
            if name not in labels or (eq and labels[name] != expected):
                return False
        return True


def parse_timestamp(value: str, now: float | None = None) -> float:
    """docker's timestamp syntax: a Go duration before now ("10m"), RFC 3339 dates and times
    with or without zone, or seconds since the epoch ("1700000000.5")."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(value) / 1e9
    except InvalidParameter:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"):
        try:
            return datetime.strptime(value.replace("Z", "+0000"), fmt).timestamp()
        except ValueError:
            continue
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).timestamp()
        except ValueError:
            continue
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
