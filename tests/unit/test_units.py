"""Tests for the go-units re-implementation (sizes and durations as docker prints them)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.units import (
    bytes_size,
    from_human_size,
    human_duration,
    human_size,
    human_size_precision,
    parse_go_float,
    parse_ram_size,
)

# Sizes seen in `docker images` (SIZE uses precision 3, VirtualSize precision 4).
HUMAN_SIZE = [
    (0, "0B"),
    (1, "1B"),
    (999, "999B"),
    (1000, "1kB"),
    (1024, "1.02kB"),
    (999_999, "1e+03kB"),  # go-units' %.3g quirk: 999.999 rounds to "1e+03"
    (1_000_000, "1MB"),
    (1_985_512, "1.99MB"),
    (4_256_000, "4.26MB"),
    (211_700_712, "212MB"),
    (10**12, "1TB"),
    (2.5e24, "2.5YB"),
    (1e27, "1e+03YB"),
]


@pytest.mark.parametrize(("size", "text"), HUMAN_SIZE)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "precision", "text"),
    [
        (1_985_512, 4, "1.986MB"),
        (211_700_712, 4, "211.7MB"),
        (2_500, 1, "2kB"),  # Go rounds the exact binary value half to even, like %g
        (1_500, 0, "2kB"),  # precision 0 acts as 1
        (123_456_789, 10, "123.456789MB"),
    ],
)
def test_human_size_precision(size, precision, text):
    assert human_size_precision(size, precision) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (1048576, "1MiB"),
        (5 * 1024**3 + 1, "5GiB"),
        (1024**4 * 1.25, "1.25TiB"),
        (1024**9, "1024YiB"),
    ],
)
def test_bytes_size(size, text):
    assert bytes_size(size) == text


DURATIONS = [
    (-5, "Less than a second"),
    (0.999, "Less than a second"),
    (1, "1 second"),
    (1.9, "1 second"),
    (59, "59 seconds"),
    (60, "About a minute"),
    (119, "About a minute"),
    (120, "2 minutes"),
    (59 * 60 + 59, "59 minutes"),
    (3600, "About an hour"),
    (3600 * 1.49, "About an hour"),
    (3600 * 1.5, "2 hours"),  # hours are rounded, minutes and seconds truncated
    (3600 * 47.4, "47 hours"),
    (3600 * 47.5, "2 days"),
    (3600 * 24 * 13, "13 days"),
    (3600 * 24 * 14, "2 weeks"),
    (3600 * 24 * 59, "8 weeks"),
    (3600 * 24 * 60, "2 months"),
    (3600 * 24 * 365 * 2 - 3600, "24 months"),
    (3600 * 24 * 365 * 2, "2 years"),
    (3600 * 24 * 365 * 7.5, "7 years"),
]


@pytest.mark.parametrize(("seconds", "text"), DURATIONS)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


RAM = [
    ("512m", 512 * 1024**2),
    ("512M", 512 * 1024**2),
    ("1g", 1024**3),
    ("1 GB", 1024**3),
    ("1.5g", 3 * 1024**3 // 2),
    ("1kib", 1024),
    ("1KiB", 1024),
    ("32", 32),
    ("32b", 32),
    ("5 ", 5),
    ("0.5k", 512),
    ("1e3k", 1024000),
]


@pytest.mark.parametrize(("text", "value"), RAM)
def test_parse_ram_size(text, value):
    assert parse_ram_size(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("44kB", 44000), ("17MB", 17_000_000), ("1.5 GB", 1_500_000_000), ("3kib", 3000)],
)
def test_from_human_size(text, value):
    assert from_human_size(text) == value


RAM_ERRORS = [
    ("", "invalid size: ''"),
    ("abc", "invalid size: 'abc'"),
    ("-1", "invalid size: '-1'"),
    ("-1k", "invalid size: '-1k'"),
    ("1x", "invalid suffix: 'x'"),
    ("1kbb", "invalid suffix: 'kbb'"),
    ("1KBB", "invalid suffix: 'kbb'"),
    ("1kibi", "invalid suffix: 'kibi'"),
    ("1bb", "invalid suffix: 'bb'"),
    ("1kx", "invalid suffix: 'kx'"),
    ("1kix", "invalid suffix: 'kix'"),
    ("m512", 'strconv.ParseFloat: parsing "m512": invalid syntax'),
    (" 5", 'strconv.ParseFloat: parsing " 5": invalid syntax'),
    ("1.5.5", 'strconv.ParseFloat: parsing "1.5.5": invalid syntax'),
]


@pytest.mark.parametrize(("text", "message"), RAM_ERRORS)
def test_parse_ram_size_errors(text, message):
    with pytest.raises(ValueError) as exc:
        parse_ram_size(text)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1_000.5", 1000.5),
        ("inf", float("inf")),
        ("-Infinity", float("-inf")),
        ("0x1p-2", 0.25),
        (".5", 0.5),
        ("1e3", 1000.0),
    ],
)
def test_parse_go_float(text, value):
    assert parse_go_float(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1e400", "value out of range"),
        ("0x10", "invalid syntax"),
        ("1_", "invalid syntax"),
        ("\u0661", "invalid syntax"),
    ],
)
def test_parse_go_float_rejects(text, why):
    with pytest.raises(ValueError, match=why):
        parse_go_float(text)


@given(st.integers(min_value=0, max_value=10**17))  # parsing stops at the "p" suffix
def test_human_size_round_trips_within_precision(n):
    # Three significant digits: parsing the text back is within half a unit
    # of the last digit (0.5% relative), plus the "1e+03kB" rounding case.
    back = from_human_size(human_size(n))
    assert abs(back - n) <= max(n * 0.005, 0.5) + 1


@given(st.integers(min_value=0, max_value=2**60 - 2**45))
def test_bytes_size_round_trips_within_precision(n):
    back = parse_ram_size(bytes_size(n))
    assert abs(back - n) <= max(n * 0.0005, 0.5) + 1


@given(st.floats(min_value=0, max_value=3600 * 24 * 365 * 50))
def test_human_duration_is_monotonic_in_unit_order(seconds):
    order = ["Less", "second", "minute", "hour", "day", "week", "month", "year"]
    a, b = human_duration(seconds), human_duration(seconds * 2 + 1)
    rank = [next(i for i, w in enumerate(order) if w in t) for t in (a, b)]
    assert rank[0] <= rank[1]
