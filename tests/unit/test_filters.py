"""The Engine API `filters` parameter (dockyard.engine.filters), against moby's
daemon/internal/filters (parse.go, errors.go) and daemon/internal/timestamp. Timestamp values
were computed with moby's timestamp.Parse compiled with Go, reference time 1700000000."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.engine.filters import Filters, parse_timestamp
from dockyard.errors import InvalidParameter

NOW = 1_700_000_000.0


def _message(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameter) as info:
        call()
    assert info.value.status == 400
    return info.value.message


# -- JSON shapes ------------------------------------------------------------------------------


def test_both_json_shapes() -> None:
    current = Filters.from_json('{"label": {"a=b": true, "c": true}, "dangling": {"true": true}}')
    legacy = Filters.from_json('{"label": ["a=b", "c"], "dangling": ["true"]}')
    for f in (current, legacy):
        assert f.get("label") == ["a=b", "c"]
        assert f.get("dangling") == ["true"]
        assert "label" in f and "before" not in f
        assert f.get("before") == []


@pytest.mark.parametrize("text", ["", None, "null", "{}"])
def test_empty(text: str | None) -> None:
    f = Filters.from_json(text)
    assert f.fields == {}
    assert f.get_bool("dangling", True) is True


@pytest.mark.parametrize(
    "text",
    [
        "{",  # not JSON
        "[]",  # not an object
        '"label"',
        '{"label": "a"}',  # neither shape
        '{"label": [1]}',
        '{"label": {"a": "yes"}}',  # map values must be booleans
        '{"label": {"a": true}, "dangling": ["true"]}',  # the shapes do not mix
    ],
)
def test_malformed_json_is_invalid_filter(text: str) -> None:
    assert _message(lambda: Filters.from_json(text)) == "invalid filter"


def test_null_values_decode_as_empty() -> None:
    # Go decodes null into a nil map / slice: the key is present with no values.
    for text in ('{"dangling": null}', '{"dangling": {}}', '{"dangling": []}'):
        f = Filters.from_json(text)
        assert "dangling" in f
        assert f.get("dangling") == []
        assert _message(lambda f=f: f.get_bool("dangling", False)) == "invalid filter 'dangling'"


def test_a_false_flag_is_still_a_value_but_not_a_true_one() -> None:
    # moby's Get lists every key of the inner map; GetBoolOrDefault reads the booleans.
    f = Filters.from_json('{"label": {"a=b": false}, "dangling": {"true": false}}')
    assert f.get("label") == ["a=b"]
    assert f.match_kv("label", {"a": "x"}) is False
    assert _message(lambda: f.get_bool("dangling", False)) == "invalid filter 'dangling=[true]'"
    f = Filters.from_json('{"dangling": {"true": false, "false": true}}')
    assert f.get_bool("dangling", True) is False


def test_to_json_round_trips() -> None:
    f = Filters({"label": ["a", "b=c"], "dangling": ["true"]})
    again = Filters.from_json(f.to_json())
    assert again.fields == f.fields
    assert json.loads(f.to_json()) == {
        "label": {"a": True, "b=c": True},
        "dangling": {"true": True},
    }


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8), st.sets(st.text(max_size=8), max_size=4), max_size=4
    )
)
def test_json_round_trip_property(fields: dict[str, set[str]]) -> None:
    f = Filters(fields)
    assert Filters.from_json(f.to_json()).fields == fields
    legacy = json.dumps({k: sorted(v) for k, v in fields.items()})
    assert Filters.from_json(legacy).fields == fields


# -- validate and get_bool ----------------------------------------------------------------------


def test_validate_names_the_first_unknown_filter() -> None:
    f = Filters.from_json('{"dangling": ["true"], "x": ["1"]}')
    assert _message(lambda: f.validate({"dangling", "label"})) == "invalid filter 'x'"
    Filters.from_json('{"dangling": ["true"]}').validate({"dangling", "label"})


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["true"], True), (["1"], True), (["1", "true"], True), (["false"], False), (["0"], False)],
)
def test_get_bool(values: list[str], expected: bool) -> None:
    assert Filters({"dangling": values}).get_bool("dangling", not expected) is expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["maybe"], "invalid filter 'dangling=[maybe]'"),
        (["true", "false"], "invalid filter 'dangling=[false true]'"),
        (["1", "0"], "invalid filter 'dangling=[0 1]'"),
        (["TRUE"], "invalid filter 'dangling=[TRUE]'"),
        ([], "invalid filter 'dangling'"),
    ],
)
def test_get_bool_errors(values: list[str], message: str) -> None:
    f = Filters({"dangling": values})
    assert _message(lambda: f.get_bool("dangling", True)) == message


def test_get_bool_default_when_absent() -> None:
    assert Filters().get_bool("dangling", True) is True
    assert Filters().get_bool("dangling", False) is False


# -- match_kv ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "labels", "expected"),
    [
        ([], None, True),  # no filter: everything matches
        ([], {}, True),
        (["a"], None, False),
        (["a"], {}, False),
        (["a"], {"a": ""}, True),
        (["a"], {"b": "1"}, False),
        (["a=1"], {"a": "1"}, True),
        (["a=1"], {"a": "2"}, False),
        (["a="], {"a": ""}, True),
        (["a="], {"a": "x"}, False),
        (["a=b=c"], {"a": "b=c"}, True),  # cut at the first '='
        (["a", "b=2"], {"a": "x", "b": "2"}, True),  # all must hold
        (["a", "b=2"], {"a": "x", "b": "3"}, False),
    ],
)
def test_match_kv(wanted: list[str], labels: dict[str, str] | None, expected: bool) -> None:
    assert Filters({"label": wanted}).match_kv("label", labels) is expected


def test_match_kv_without_the_key() -> None:
    assert Filters({"other": ["x"]}).match_kv("label", None) is True


# -- timestamps -------------------------------------------------------------------------------


@pytest.fixture
def tz() -> Iterator[callable]:  # type: ignore[valid-type]
    old = os.environ.get("TZ")

    def use(zone: str) -> None:
        os.environ["TZ"] = zone
        time.tzset()

    yield use
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


GO_UTC = [
    # durations before the reference time
    ("10m", 1699999400.0),
    ("1h30m", 1699994600.0),
    ("-1h", 1700003600.0),
    ("5.s", 1699999995.0),
    ("1us", 1699999999.999999),
    ("1ns", 1699999999.999999999),
    # "0" is the epoch, not a zero duration
    ("0", 0.0),
    # seconds since the epoch
    ("1700000000", 1700000000.0),
    ("1700000000.5", 1700000000.5),
    ("1700000000.123456789123", 1700000000.123456789),
    ("+5", 5.0),
    ("1", 1.0),
    # RFC 3339 forms
    ("2023-11-14", 1699920000.0),
    ("2023-11-14T22", 1699999200.0),
    ("2023-11-14T22:13", 1699999980.0),
    ("2023-11-14T22:13:20", 1700000000.0),
    ("2023-11-14T22:13:20.5", 1700000000.5),
    ("2023-11-14T22:13:20,5", 1700000000.5),
    ("2023-11-14T22:13:20Z", 1700000000.0),
    ("2023-11-14T22:13:20.123456789Z", 1700000000.123456789),
    ("2023-11-14T22:13:20+01:00", 1699996400.0),
    ("2023-11-14T22:13:20-05:00", 1700018000.0),
    ("2023-11-14T22:13+01:00", 1699996380.0),
    ("2023-11-14T22Z", 1699999200.0),
    ("2023-11-14T1:13:20Z", 1699924400.0),
    ("2023-11-14Z", 1699920000.0),
    ("2023-11-14+02:00", 1699912800.0),
    ("2024-02-29", 1709164800.0),
    ("0000-01-01", -62167219200.0),
    ("1969-12-31T23:59:59.999999999Z", -1e-9),
]


@pytest.mark.parametrize(("value", "expected"), GO_UTC)
def test_parse_timestamp_matches_go(tz, value: str, expected: float) -> None:  # type: ignore[no-untyped-def]
    tz("UTC")
    assert parse_timestamp(value, now=NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-11-14", 1699938000.0),
        ("2023-11-14T22:13", 1700017980.0),
        ("2023-11-14T22:13:20.5", 1700018000.5),
        # Go parses in the reference time's zone offset (EST here), not the date's (EDT).
        ("2023-07-01T12:00:00", 1688230800.0),
        ("2023-11-14T22:13:20Z", 1700000000.0),
    ],
)
def test_parse_timestamp_local_zone(tz, value: str, expected: float) -> None:  # type: ignore[no-untyped-def]
    tz("America/New_York")
    assert parse_timestamp(value, now=NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "failed to parse value as time or duration: value is empty"),
        ("  ", "failed to parse value as time or duration: value is empty"),
        ("abc", 'failed to parse value as time or duration: invalid seconds "abc": invalid syntax'),
        ("1x", 'failed to parse value as time or duration: invalid seconds "1x": invalid syntax'),
        ("1e3", 'failed to parse value as time or duration: invalid seconds "1e3": invalid syntax'),
        (
            "1.x",
            "failed to parse value as time or duration: invalid nanoseconds: "
            "invalid character 'x' at position 0",
        ),
        (
            "1.+5",
            "failed to parse value as time or duration: invalid nanoseconds: "
            "invalid character '+' at position 0",
        ),
        (
            "1.123456789012345678901",
            "failed to parse value as time or duration: invalid nanoseconds: "
            "length 21 exceeds maximum 20",
        ),
        # with a '-' it was an RFC 3339 time the parser rejected
        ("-1", 'parsing time "-1" as "2006-01-02"'),
        ("2023-13-01", 'parsing time "2023-13-01": month out of range'),
        ("2023-02-30", 'parsing time "2023-02-30": day out of range'),
        ("1900-02-29", 'parsing time "1900-02-29": day out of range'),
        ("2023-11-14T24:00", 'parsing time "2023-11-14T24:00": hour out of range'),
        ("2023-11-14T23:59:60Z", 'parsing time "2023-11-14T23:59:60Z": second out of range'),
        # the zone offset needs its colon; Go then counts one colon too many
        (
            "2023-11-14T22:13:20+0100",
            'parsing time "2023-11-14T22:13:20+0100" as "2006-01-02T15:04Z07:00"',
        ),
    ],
)
def test_parse_timestamp_errors(tz, value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    tz("UTC")
    assert _message(lambda: parse_timestamp(value, now=NOW)).startswith(message)


@given(st.integers(-(10**6), 10**6), st.integers(0, 999_999_999))
def test_unix_seconds_round_trip(seconds: int, nanos: int) -> None:
    value = f"{seconds}.{nanos:09d}"
    if seconds < 0:  # a '-' makes docker read it as a date, which it is not
        with pytest.raises(InvalidParameter):
            parse_timestamp(value, now=NOW)
        return
    assert parse_timestamp(value, now=NOW) == pytest.approx(seconds + nanos / 1e9, abs=1e-6)


@given(st.integers(0, 10**7))
def test_durations_count_back_from_now(seconds: int) -> None:
    assert parse_timestamp(f"{seconds}s", now=NOW) == NOW - seconds
    assert parse_timestamp(f"-{seconds}s", now=NOW) == NOW + seconds


def test_now_defaults_to_the_clock() -> None:
    before = time.time()
    stamp = parse_timestamp("1h")
    assert before - 3600 - 1 <= stamp <= time.time() - 3600 + 1
