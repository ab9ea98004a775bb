"""The OCI image model (dockyard.image.model): chain IDs, RFC 3339 times, config diffIDs."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.image.model import (
    chain_ids,
    config_diff_ids,
    parse_rfc3339,
    rfc3339_nano,
    sha256_digest,
)

D1 = "sha256:b345188aac2034ad18993fb60f6f7e635ab9f64fd6725c356f025e0602afd7a8"
D2 = "sha256:aeedd6494e65c870ff3d427d5ed19e280299ccaebb4bb4aa16325c041e3c2440"
D3 = "sha256:ce1fdb875f87688f1ab6719527753749973c527cd97ad023f0fb52862480f3ae"

digests = st.binary(min_size=1, max_size=8).map(sha256_digest)


# -- chain IDs ----------------------------------------------------------------------------------


def test_chain_ids_match_dockers_layerdb() -> None:
    # dockerd 20.10's /var/lib/docker/image/overlay2/layerdb/sha256/<chainID>/{diff,parent}
    # for two images sharing a busybox base layer.
    assert chain_ids([D1]) == [D1]
    assert chain_ids([D1, D2]) == [
        D1,
        "sha256:e5ed3aa6161a774f9460a70135eb859ebac6f733a266b73e6a9028a2fe6597de",
    ]
    assert chain_ids([D1, D3]) == [
        D1,
        "sha256:78cd02a4737bcb2b9f68fd0cb218bc5921a51915efd9e9be73d5ea2dad1ff7fa",
    ]


def test_chain_ids_by_hand() -> None:
    c2 = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {D3}".encode()).hexdigest()
    assert chain_ids([D1, D2, D3]) == [D1, c2, c3]
    assert chain_ids([]) == []


def test_order_matters() -> None:
    assert chain_ids([D1, D2])[-1] != chain_ids([D2, D1])[-1]


@given(st.lists(digests, max_size=8), st.integers(0, 8))
def test_chain_ids_of_a_prefix_are_a_prefix(diff_ids: list[str], k: int) -> None:
    chains = chain_ids(diff_ids)
    assert len(chains) == len(diff_ids)
    assert chain_ids(diff_ids[:k]) == chains[:k]
    for i in range(1, len(chains)):
        expected = hashlib.sha256(f"{chains[i - 1]} {diff_ids[i]}".encode()).hexdigest()
        assert chains[i] == "sha256:" + expected


# -- RFC 3339 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [  # Go: time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (1700000000120000000, "2023-11-14T22:13:20.12Z"),
        (1700000000123456789, "2023-11-14T22:13:20.123456789Z"),
        (1700000000000000100, "2023-11-14T22:13:20.0000001Z"),
        (-62135596800 * 10**9, "0001-01-01T00:00:00Z"),  # Go's zero time
        (-30641662555 * 10**9 + 600_000_000, "0999-01-02T03:04:05.6Z"),
        (253402300799 * 10**9 + 999_999_999, "9999-12-31T23:59:59.999999999Z"),
    ],
)
def test_rfc3339_nano_matches_go(ns: int, text: str) -> None:
    assert rfc3339_nano(ns) == text
    assert math.isclose(parse_rfc3339(text), ns / 1e9, rel_tol=1e-15, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2023-11-14T22:13:20Z", 1700000000.0),
        ("2023-11-14T22:13:20+01:00", 1699996400.0),
        ("2023-11-14T22:13:20-05:00", 1700018000.0),
        ("2023-11-14T22:13:20.5-05:00", 1700018000.5),
        ("2023-11-14T22:13:20.123456789Z", 1700000000.123456789),
        ("2023-11-14T22:13:20", 1700000000.0),  # no zone: UTC
        ("0001-01-01T00:00:00Z", -62135596800.0),
    ],
)
def test_parse_rfc3339(text: str, seconds: float) -> None:
    assert math.isclose(parse_rfc3339(text), seconds, rel_tol=1e-15, abs_tol=1e-9)


ZERO_TIME_NS = -62135596800 * 10**9
MAX_NS = 253402300799 * 10**9 + 999_999_999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")


@given(st.integers(ZERO_TIME_NS, MAX_NS))
def test_rfc3339_round_trip(ns: int) -> None:
    text = rfc3339_nano(ns)
    assert RFC3339_NANO.match(text), text
    seconds, frac = divmod(ns, 10**9)
    whole = (EPOCH + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()
    assert text == whole + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"
    assert math.isclose(parse_rfc3339(text), ns / 1e9, rel_tol=1e-15, abs_tol=1e-9)


@given(st.integers(0, 4102444800 * 10**9), st.integers(-14 * 60, 14 * 60))
def test_parse_rfc3339_honours_the_offset(ns: int, offset_minutes: int) -> None:
    utc = rfc3339_nano(ns)
    local = datetime.fromisoformat(utc[:19]).replace(tzinfo=UTC) + timedelta(minutes=offset_minutes)
    sign = "+" if offset_minutes >= 0 else "-"
    zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    frac = utc[19:-1]
    text = local.replace(tzinfo=None).isoformat() + frac + zone
    assert math.isclose(parse_rfc3339(text), parse_rfc3339(utc), rel_tol=1e-15, abs_tol=1e-9)


# -- config diffIDs -----------------------------------------------------------------------------


def test_config_diff_ids() -> None:
    config = {"rootfs": {"type": "layers", "diff_ids": [D1, D2]}}
    result = config_diff_ids(config)
    assert result == [D1, D2]
    result.append(D3)  # a copy
    assert config["rootfs"]["diff_ids"] == [D1, D2]
    assert config_diff_ids({"rootfs": {"type": "layers", "diff_ids": []}}) == []
    assert config_diff_ids({"rootfs": {"type": "layers", "diff_ids": None}}) == []
    assert config_diff_ids({"rootfs": {"type": "layers"}}) == []


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"rootfs": None},
        {"rootfs": [D1]},
        {"rootfs": {"diff_ids": [D1]}},
        {"rootfs": {"type": "layer", "diff_ids": [D1]}},
    ],
)
def test_config_without_a_layers_rootfs(config: dict) -> None:
    with pytest.raises(ValueError, match="no layers rootfs"):
        config_diff_ids(config)


@pytest.mark.parametrize(
    "diff_ids",
    [
        D1,  # a string, not a list
        {},
        "",
        {"a": D1},
        [D1.upper()],
        [D1[:-1]],
        ["sha512:" + D1[7:]],
        [D1[7:]],
        [None],
        [1],
        [D1, "sha256:../../etc/passwd"],
    ],
)
def test_config_with_invalid_diff_ids(diff_ids: object) -> None:
    with pytest.raises(ValueError, match="invalid diff_ids"):
        config_diff_ids({"rootfs": {"type": "layers", "diff_ids": diff_ids}})
