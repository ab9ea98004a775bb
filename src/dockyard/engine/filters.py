"""The Engine API's `filters` query parameter (pure): parsing, validation and matching as
moby's filters package does them, plus docker's timestamp syntax for `until`/`since`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.image.changes import parse_duration


def _invalid(name: str = "", values: Iterable[str] | None = None) -> InvalidParameter:
    """moby's invalidFilter: `invalid filter`, `invalid filter 'x'`, `invalid filter 'x=[a b]'`."""
    msg = "invalid filter"
    if name:
        msg += " '" + name
        if values is not None:
            msg += "=[" + " ".join(values) + "]"
        msg += "'"
    return InvalidParameter(msg)


class Filters:
    """key → set of values. Both JSON shapes are accepted: {"k": {"v": true}} and the older
    {"k": ["v"]}. As in moby, a value given as {"v": false} is still a value of the key (get,
    match_kv), but does not count as set for get_bool."""

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self.fields: dict[str, set[str]] = {k: set(v) for k, v in (fields or {}).items()}
        self._off: dict[str, set[str]] = {}  # values whose JSON flag was false

    @classmethod
    def from_json(cls, text: str | None) -> Filters:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            raise _invalid() from None
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise _invalid()
        current = cls._from_map(raw)
        if current is not None:
            return current
        legacy = cls._from_lists(raw)
        if legacy is None:
            raise _invalid()
        return legacy

    @classmethod
    def _from_map(cls, raw: dict[str, Any]) -> Filters | None:
        """{"k": {"v": true}}: Go's map[string]map[string]bool (null decodes as empty/false)."""
        result = cls()
        for key, values in raw.items():
            if values is None:
                values = {}
            if not isinstance(values, dict) or not all(
                v is None or isinstance(v, bool) for v in values.values()
            ):
                return None
            result.fields[key] = set(values)
            off = {v for v, on in values.items() if not on}
            if off:
                result._off[key] = off
        return result

    @classmethod
    def _from_lists(cls, raw: dict[str, Any]) -> Filters | None:
        """{"k": ["v"]}: Go's map[string][]string (null decodes as empty)."""
        result = cls()
        for key, values in raw.items():
            if values is None:
                values = []
            if not isinstance(values, list) or not all(
                v is None or isinstance(v, str) for v in values
            ):
                return None
            result.fields[key] = {v or "" for v in values}
        return result

    def to_json(self) -> str:
        return json.dumps(
            {
                k: {v: v not in self._off.get(k, ()) for v in sorted(vs)}
                for k, vs in self.fields.items()
            }
        )

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
        """moby's GetBoolOrDefault: "1"/"true" or "0"/"false"; anything else, both or none of
        them is an error."""
        if key not in self.fields:
            return default
        values = self.fields[key]
        if not values:
            raise _invalid(key)
        on = values - self._off.get(key, set())
        false = "0" in on or "false" in on
        true = "1" in on or "true" in on
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


# moby's daemon/internal/timestamp: which layout a value is parsed with depends on its shape.
_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
_HOUR = r"T(?P<h>[0-9]{1,2})"
_MINUTE = r":(?P<mi>[0-9]{2})"
_SECOND = r":(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?"
_ZONE = r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2})"


def _layout(value: str) -> tuple[str, str]:
    """(Go layout, regular expression) for value, as timestamp.Parse chooses them."""
    local = not any(c in value for c in "zZ+") and value.count("-") != 3
    zone = "" if local else _ZONE
    go_zone = "" if local else "Z07:00"
    if "." in value:
        return "2006-01-02T15:04:05.999999999" + go_zone, _DATE + _HOUR + _MINUTE + _SECOND + zone
    if "T" in value:
        colons = value.count(":")
        if not local and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1
        if colons == 0:
            return "2006-01-02T15" + go_zone, _DATE + _HOUR + zone
        if colons == 1:
            return "2006-01-02T15:04" + go_zone, _DATE + _HOUR + _MINUTE + zone
        return "2006-01-02T15:04:05" + go_zone, _DATE + _HOUR + _MINUTE + _SECOND + zone
    return "2006-01-02" + go_zone, _DATE + zone


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year, as Go has them)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse_layout(value: str, now: float) -> float:
    layout, pattern = _layout(value)
    m = re.fullmatch(pattern, value)
    if m is None:
        raise InvalidParameter(f'parsing time "{value}" as "{layout}": cannot parse "{value}"')
    g = {k: int(v) for k, v in m.groupdict().items() if v and k not in ("z", "f")}
    for field, name, low, high in (
        ("mo", "month", 1, 12),
        ("h", "hour", 0, 23),
        ("mi", "minute", 0, 59),
        ("s", "second", 0, 59),
    ):
        if field in g and not low <= g[field] <= high:
            raise InvalidParameter(f'parsing time "{value}": {name} out of range')
    if not 1 <= g["d"] <= _days_in_month(g["y"], g["mo"]):
        raise InvalidParameter(f'parsing time "{value}": day out of range')
    zone = m.group("z") if "z" in m.groupdict() else None
    if zone is None:
        # Go parses in time.FixedZone(reference.Zone()): the local offset at the reference time.
        offset = time.localtime(now).tm_gmtoff
    elif zone == "Z":
        offset = 0
    else:
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        if abs(offset) >= 24 * 3600:
            raise InvalidParameter(f'parsing time "{value}": time zone offset out of range')
    seconds = (
        _days_from_civil(g["y"], g["mo"], g["d"]) * 86400
        + g.get("h", 0) * 3600
        + g.get("mi", 0) * 60
        + g.get("s", 0)
        - offset
    )
    fraction = (m.groupdict().get("f") or "")[:9]
    return seconds + int(fraction.ljust(9, "0")) / 1e9


def _parse_unix(value: str) -> float:
    """seconds[.nanoseconds]"""
    seconds, _, nanos = value.partition(".")
    if not re.fullmatch(r"[+-]?[0-9]+", seconds) or not -(2**63) <= int(seconds) < 2**63:
        reason = "value out of range" if re.fullmatch(r"[+-]?[0-9]+", seconds) else "invalid syntax"
        raise InvalidParameter(f'invalid seconds "{seconds}": {reason}')
    if len(nanos) > 20:
        raise InvalidParameter(f"invalid nanoseconds: length {len(nanos)} exceeds maximum 20")
    for i, c in enumerate(nanos):
        if c not in "0123456789":
            raise InvalidParameter(f"invalid nanoseconds: invalid character '{c}' at position {i}")
    return int(seconds) + int(nanos[:9].ljust(9, "0")) / 1e9


def parse_timestamp(value: str, now: float | None = None) -> float:
    """docker's timestamp syntax (moby's timestamp.Parse) as seconds since the epoch: a Go
    duration before now ("10m", "-1h" is in the future), an RFC 3339 date or time with or without
    zone (local time without one), or seconds since the epoch ("1700000000.5"). "0" is the
    epoch, not a duration."""
    if not value.strip():
        raise InvalidParameter("failed to parse value as time or duration: value is empty")
    now = time.time() if now is None else now
    if value != "0":
        try:
            return now - parse_duration(value) / 1e9
        except InvalidParameter:
            pass
    try:
        return _parse_layout(value, now)
    except InvalidParameter:
        if "-" in value:
            raise
    try:
        return _parse_unix(value)
    except InvalidParameter as exc:
        raise InvalidParameter(
            f"failed to parse value as time or duration: {exc.message}"
        ) from None
