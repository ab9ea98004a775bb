"""wirejson agrees with the json package on every JSON value (and on what is not JSON)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli import wirejson

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_dumps_is_compact_json(value):
    assert wirejson.dumps(value) == json.dumps(value, separators=(",", ":"))


@given(values, st.sampled_from(["", " ", "\n", "\r\n\t "]))
def test_loads_reads_what_json_writes(value, pad):
    for text in (json.dumps(value), json.dumps(value, indent=2, ensure_ascii=False)):
        assert wirejson.loads(pad + text + pad) == value
        assert wirejson.loads((pad + text).encode()) == value


def test_constants_as_json_reads_them():
    assert math.isnan(wirejson.loads("NaN"))
    assert wirejson.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a":}', "[1,]", "01", "{} {}", "nul", "'x'"])
def test_not_json_is_a_value_error(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(ValueError):
        wirejson.loads(text)


def test_unserializable_and_cycles_are_errors():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        wirejson.dumps({"a": {1}})
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError):
        wirejson.dumps(cycle)


def test_importing_it_imports_no_regex():
    code = "import sys, dockyard.cli.wirejson; print('re' in sys.modules, 'json' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
