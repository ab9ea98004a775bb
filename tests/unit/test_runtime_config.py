"""merge_config, command_line, the process env, capabilities and rlimits.

merge_config's expectations are `docker inspect` .Config after `docker create` on dockerd 20.10
(busybox here is built offline and has no Cmd; dyobs-img is runtime_fixtures.IMAGE).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.runtime.defaults import (
    DEFAULT_CAPABILITIES,
    KNOWN_CAPABILITIES,
    capabilities_from_mask,
)
from dockyard.runtime.spec import (
    RunOptions,
    clamp_rlimits,
    command_line,
    merge_config,
    process_env,
    replace_or_append_env,
    tweak_capabilities,
)
from tests.unit.runtime_fixtures import CID, IMAGE, SLEEP, ZERO, spec_for

# --- merge_config: `docker create` against dyobs-img / busybox, `docker inspect` .Config ------


def test_merge_config_image_defaults():
    config = merge_config(IMAGE, RunOptions(image="dyobs-img"), container_id=CID)
    assert config == {
        "Hostname": "d8aa9a53fc4b",
        "Domainname": "",
        "User": "0:0",
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": ["PATH=/imgbin:/bin", "A=img", "B=img2"],
        "Cmd": ["c1", "c2"],
        "Image": "dyobs-img",
        "Volumes": {"/vol": {}},
        "WorkingDir": "/srv",
        "Entrypoint": ["/bin/echo", "ep"],
        "OnBuild": None,
        "Labels": {"x": "1", "y": "2"},
        "StopSignal": "SIGUSR1",
    }


def test_merge_config_user_overrides():
    """-e A=user -e C=3 -e B --label y=u --label z=3 -w /w -u 5 --stop-signal 9 -v /vol2 x y"""
    opts = RunOptions(
        image="dyobs-img",
        cmd=["x", "y"],
        env=["A=user", "C=3", "B"],
        labels={"y": "u", "z": "3"},
        working_dir="/w",
        user="5",
        stop_signal="9",
        binds=["/vol2"],
    )
    config = merge_config(IMAGE, opts, container_id=CID)
    assert config["Env"] == ["A=user", "C=3", "B", "PATH=/imgbin:/bin"]
    assert config["Labels"] == {"x": "1", "y": "u", "z": "3"}
    assert config["Volumes"] == {"/vol": {}, "/vol2": {}}
    assert (config["Cmd"], config["Entrypoint"]) == (["x", "y"], ["/bin/echo", "ep"])
    assert (config["User"], config["WorkingDir"], config["StopSignal"]) == ("5", "/w", "9")


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "expected"),
    [
        (["/bin/sh"], None, (["/bin/sh"], None)),  # --entrypoint drops the image's Cmd
        ([""], ["ls"], (None, ["ls"])),  # --entrypoint "" ls
        ([], None, ([], ["c1", "c2"])),  # API: an empty list resets only the entrypoint
        (None, ["ls"], (["/bin/echo", "ep"], ["ls"])),
    ],
)
def test_merge_config_entrypoint_rules(entrypoint, cmd, expected):
    config = merge_config(IMAGE, RunOptions(entrypoint=entrypoint, cmd=cmd), container_id=CID)
    assert (config["Entrypoint"], config["Cmd"]) == expected


def test_no_command_specified():
    with pytest.raises(InvalidParameter, match=r"^no command specified$"):
        merge_config(IMAGE, RunOptions(entrypoint=[""]), container_id=CID)
    with pytest.raises(InvalidParameter, match=r"^no command specified$"):
        merge_config({}, RunOptions(), container_id=CID)  # busybox here has no Cmd
    with pytest.raises(InvalidParameter, match=r"^no command specified$"):
        command_line({"Entrypoint": None, "Cmd": []})
    assert command_line({"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["c1"]}) == [
        "/bin/echo",
        "ep",
        "c1",
    ]


@pytest.mark.parametrize(
    ("flags", "opts", "expected"),
    [
        ("-i", RunOptions(open_stdin=True), (True, True, True, True, True)),
        ("-t", RunOptions(tty=True), (False, True, True, False, False)),
        ("-a stdout", RunOptions(attach=["stdout"]), (False, True, False, False, False)),
        (
            "-i -a stderr",
            RunOptions(open_stdin=True, attach=["stderr"]),
            (True, False, True, True, True),
        ),
        ("-a stdin", RunOptions(attach=["stdin"]), (True, False, False, False, False)),
        ("", RunOptions(), (False, True, True, False, False)),
        ("run -d -i", RunOptions(open_stdin=True, detach=True), (False, False, False, True, False)),
    ],
)
def test_attach_flags(flags, opts, expected):
    opts.cmd = ["sh"]
    c = merge_config({}, opts, container_id=CID)
    keys = ("AttachStdin", "AttachStdout", "AttachStderr", "OpenStdin", "StdinOnce")
    assert tuple(c[k] for k in keys) == expected


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            RunOptions(cmd=SLEEP, working_dir="tmp"),
            "the working directory 'tmp' is invalid, it needs to be an absolute path",
        ),
        (RunOptions(cmd=SLEEP, env=["=x"]), "invalid environment variable: =x"),
        (RunOptions(cmd=SLEEP, stop_signal="SIGNOPE"), "Invalid signal: SIGNOPE"),
        (
            RunOptions(cmd=SLEEP, hostname="h" * 65),
            f'hostname "{"h" * 65}" is too long (maximum 64 bytes)',
        ),
        (
            RunOptions(cmd=SLEEP, detach=True, attach=["stdout"]),
            "conflicting options: cannot specify both --attach and --detach",
        ),
    ],
)
def test_merge_config_errors(opts, message):
    with pytest.raises(InvalidParameter) as e:
        merge_config({}, opts, container_id=CID)
    assert e.value.message == message


# --- environment ----------------------------------------------------------------------------

env_keys = st.sampled_from(["A", "B", "PATH", "HOSTNAME", "LONG_NAME"])
env_entries = st.builds(lambda k, v: f"{k}={v}", env_keys, st.text("xyz=", max_size=3))


@given(st.lists(env_entries, max_size=8), st.lists(env_entries, max_size=8))
def test_env_override_keeps_first_position_and_last_value(defaults, overrides):
    merged = replace_or_append_env(defaults, overrides)
    last: dict[str, str] = {}
    order: list[str] = []
    for entry in [*defaults, *overrides]:
        key = entry.partition("=")[0]
        if key not in last:
            order.append(key)
        last[key] = entry
    # Duplicates inside `defaults` are not merged (dockerd does not either); the rest are.
    if len({e.partition("=")[0] for e in defaults}) == len(defaults):
        assert merged == [last[k] for k in order]


@given(st.lists(env_entries, max_size=8), env_keys)
def test_env_entry_without_value_unsets(overrides, key):
    merged = replace_or_append_env([f"{key}=1", "KEEP=1"], [*overrides, key])
    assert all(e.partition("=")[0] != key for e in merged)
    assert "KEEP=1" in merged


def test_process_env_default_path_only_without_image_path():
    assert process_env({"Hostname": "h", "Env": None})[0].startswith("PATH=/usr/local/sbin")
    assert process_env({"Hostname": "h", "Env": ["PATH=/x"]})[:2] == ["PATH=/x", "HOSTNAME=h"]


# --- capabilities -------------------------------------------------------------------------------

HOST_CAPS = capabilities_from_mask("000001fffeffffff")  # this machine: no CAP_SYS_RESOURCE


def test_capabilities_from_mask():
    assert "CAP_SYS_RESOURCE" not in HOST_CAPS and len(HOST_CAPS) == len(KNOWN_CAPABILITIES) - 1
    assert capabilities_from_mask(0xA80425FB) == sorted(
        DEFAULT_CAPABILITIES, key=KNOWN_CAPABILITIES.index
    )


def test_privileged_gets_what_the_daemon_holds():
    spec = spec_for(
        RunOptions(cmd=SLEEP, privileged=True), available_caps=HOST_CAPS, host_devices=[ZERO]
    )
    assert spec["process"]["capabilities"]["bounding"] == HOST_CAPS
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert spec["linux"]["devices"] == [ZERO.to_spec()]
    by_dest = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert "ro" not in by_dest["/sys"] and "ro" not in by_dest["/sys/fs/cgroup"]
    # a v1/hybrid host keeps the host cgroup namespace, even for privileged containers
    assert {"type": "cgroup"} not in spec["linux"]["namespaces"]


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        (["ALL"], ["MKNOD"], [c for c in HOST_CAPS if c != "CAP_MKNOD"]),
        (["net_admin"], [], [*DEFAULT_CAPABILITIES, "CAP_NET_ADMIN"]),
        ([], ["all"], []),
    ],
)
def test_tweak_capabilities(add, drop, expected):
    assert tweak_capabilities(add, drop, False, HOST_CAPS) == expected


def test_capability_errors():
    with pytest.raises(InvalidParameter, match=r'^invalid CapAdd: unknown capability: "CAP_NOPE"$'):
        tweak_capabilities(["nope"], [], False, HOST_CAPS)
    with pytest.raises(
        InvalidParameter, match='not available in the current environment: "CAP_SYS_RESOURCE"'
    ):
        tweak_capabilities(["SYS_RESOURCE"], [], False, HOST_CAPS)


# --- rlimits ------------------------------------------------------------------------------------


def test_clamp_rlimits_to_the_host_hard_limit():
    spec = spec_for(RunOptions(cmd=SLEEP, ulimits={"nproc": (10, 20), "core": (-1, -1)}))
    clamped = clamp_rlimits(spec, {"RLIMIT_NOFILE": 20000, "RLIMIT_CORE": -1, "RLIMIT_NPROC": 15})
    assert clamped["process"]["rlimits"] == [
        {"type": "RLIMIT_NPROC", "hard": 15, "soft": 10},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000},
    ]
    assert spec["process"]["rlimits"][2]["hard"] == 1048576  # the input is left alone


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(-1, 2**64 - 1))
def test_clamp_never_raises_and_keeps_soft_below_hard(soft, hard, host):
    soft = min(soft, hard)
    spec = {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": hard, "soft": soft}]}}
    (limit,) = clamp_rlimits(spec, {"RLIMIT_NOFILE": host})["process"]["rlimits"]
    assert limit["soft"] <= limit["hard"] <= hard
    if 0 <= host < 2**64 - 1:
        assert limit["hard"] <= host
