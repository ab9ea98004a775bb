"""The pure parts of `docker exec`: detach keys, start-error classification, Go's JSON field
matching, the CLI's escape proxy and env values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.api.routes_exec import CREATE_FIELDS, go_fields
from dockyard.cli.commands.common import validate_env
from dockyard.cli.commands.execs import _Escape, detach_keys
from dockyard.engine.execs import detach_keys_to_bytes, start_error


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("ctrl-@", b"\x00"),
        ("ctrl-a,b", b"\x01b"),
        ("ctrl-\\,ctrl-],ctrl-^,ctrl-_,ctrl-[", b"\x1c\x1d\x1e\x1f\x1b"),
        ("DEL,x", b"\x7fx"),
    ],
)
def test_detach_keys(keys: str, expected: bytes) -> None:
    assert detach_keys_to_bytes(keys) == expected
    assert detach_keys(keys) == expected


@pytest.mark.parametrize("keys", ["foo", "ctrl-P", "ctrl-", "", "a,,b", "ctrl-pp"])
def test_bad_detach_keys(keys: str) -> None:
    with pytest.raises(ValueError) as daemon:
        detach_keys_to_bytes(keys)
    with pytest.raises(ValueError) as cli:
        detach_keys(keys)
    assert str(daemon.value) == str(cli.value)
    assert str(daemon.value).startswith("Unknown character: '")


def test_start_error_codes() -> None:
    prefix = "OCI runtime exec failed: exec failed: unable to start container process: "
    err = start_error('exec: "nosuch": executable file not found in $PATH')
    assert err.message == prefix + 'exec: "nosuch": executable file not found in $PATH: unknown'
    assert (err.exit_code, err.status) == (127, 400)
    err = start_error('exec: "/etc": permission denied')
    assert (err.exit_code, err.status) == (126, 400)
    err = start_error("exec /bin/x: is a directory")
    assert err.message.endswith("is a directory: unknown: permission denied")
    assert err.exit_code == 126
    err = start_error('chdir to cwd ("/x") set in config.json failed: no such file or directory')
    assert err.exit_code == 127
    err = start_error('chdir to cwd ("/x") set in config.json failed: not a directory')
    assert err.exit_code == 127 and "Are you trying to mount" in err.message
    err = start_error("something else")
    assert (err.exit_code, err.status) == (128, 500)


def test_go_fields_are_case_insensitive() -> None:
    body = {"detachKeys": "ctrl-a", "cmd": ["ls"], "Tty": True, "tty": False, "Other": 1}
    assert go_fields(body, CREATE_FIELDS) == {"DetachKeys": "ctrl-a", "Cmd": ["ls"], "Tty": True}


@given(st.lists(st.binary(max_size=8), max_size=8))
def test_escape_proxy_passes_everything_but_the_keys(chunks: list[bytes]) -> None:
    """Every byte goes through, however the input is split, up to the detach sequence."""
    keys = b"\x10\x11"
    data = b"".join(chunks)
    proxy = _Escape(keys)
    out = b""
    for chunk in chunks:
        sent, detached = proxy.feed(chunk)
        out += sent
        if detached:
            assert data.startswith(out + keys)
            return
    held = keys[: proxy.pos]
    assert out + held == data


def test_escape_proxy_detaches_across_reads() -> None:
    proxy = _Escape(b"\x10\x11")
    assert proxy.feed(b"ab\x10") == (b"ab", False)  # held back: it may be the sequence
    assert proxy.feed(b"x\x10") == (b"\x10x", False)  # it was not: sent after all
    assert proxy.feed(b"\x11rest") == (b"", True)


def test_validate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "v")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    assert validate_env("A=b") == "A=b"
    assert validate_env("A=") == "A="
    assert validate_env("FROM_HOST") == "FROM_HOST=v"
    assert validate_env("UNSET_HERE") == "UNSET_HERE"
    with pytest.raises(ValueError, match="invalid environment variable: =x"):
        validate_env("=x")
