"""Flag parsers and user resolution, with docker's error texts as docker CLI 28 / dockerd print them.

Messages marked (CLI) were read from `docker create --name x FLAG busybox true` on the test
machine; the daemon-side ones from moby's current source where dockerd 20.10 words them
differently (restart policies), as noted.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.runtime.mountspec import MountPoint, merge_tmpfs_options, parse_bind
from dockyard.runtime.options import (
    DeviceMapping,
    RunOptions,
    adapt_options,
    parse_device,
    parse_device_cgroup_rule,
    parse_security_opt,
    parse_signal,
    validate_resources,
)
from dockyard.runtime.spec import (
    parse_cpus,
    parse_env_file,
    parse_restart_policy,
    parse_ulimit,
    resolve_user,
)
from dockyard.runtime.users import UserLookupError, exec_user
from tests.unit.runtime_fixtures import GROUP, PASSWD


def message(fn, *args, **kw) -> str:
    with pytest.raises(InvalidParameter) as e:
        fn(*args, **kw)
    return e.value.message


# --- ulimits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nofile=1024:2048", ("nofile", 1024, 2048)),
        ("nproc=100", ("nproc", 100, 100)),
        ("core=-1", ("core", -1, -1)),
        ("core=5:-1", ("core", 5, -1)),
        ("nofile=+5", ("nofile", 5, 5)),
    ],
)
def test_parse_ulimit(value, expected):
    assert parse_ulimit(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("nofile", "invalid ulimit argument: nofile"),
        (
            "nofile=1:2:3",
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`",
        ),
        ("foo=1", "invalid ulimit type: foo"),
        ("as=1", "invalid ulimit type: as"),
        ("nofile=2:1", "ulimit soft limit must be less than or equal to hard limit: 2 > 1"),
        (
            "nofile=-1:5",
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5",
        ),
        ("nofile=x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("nofile=1:y", 'strconv.ParseInt: parsing "y": invalid syntax'),
        ("nofile=x:y", 'strconv.ParseInt: parsing "y": invalid syntax'),  # hard is parsed first
        ("nofile= 1", 'strconv.ParseInt: parsing " 1": invalid syntax'),
        ("nofile=1_0", 'strconv.ParseInt: parsing "1_0": invalid syntax'),
        (
            "nofile=9223372036854775808",
            'strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
    ],
)
def test_parse_ulimit_errors(value, error):  # (CLI)
    assert message(parse_ulimit, value) == error


# --- cpus ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "nano"),
    [
        ("1.5", 1_500_000_000),
        ("2", 2_000_000_000),
        ("0.001", 1_000_000),
        ("3/2", 1_500_000_000),
        ("1e-3", 1_000_000),
        (".5", 500_000_000),
        ("-1", -1_000_000_000),  # the daemon refuses it later ("range of CPUs ...")
        ("0e99999", 0),
    ],
)
def test_parse_cpus(value, nano):
    assert parse_cpus(value) == nano


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("abc", "failed to parse abc as a rational number"),
        ("0.0000000001", "value is too precise"),
        ("1/0", "failed to parse 1/0 as a rational number"),
        (" 1", "failed to parse  1 as a rational number"),
        ("1e-99999", "value is too precise"),
        ("nan", "failed to parse nan as a rational number"),
    ],
)
def test_parse_cpus_errors(value, error):  # (CLI)
    assert message(parse_cpus, value) == error


@given(st.integers(0, 10**6), st.integers(0, 9))
def test_parse_cpus_decimal_round_trip(whole, tenths):
    assert parse_cpus(f"{whole}.{tenths}") == whole * 10**9 + tenths * 10**8


# --- restart policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("", 0)),
        ("no", ("no", 0)),
        ("always", ("always", 0)),
        ("unless-stopped", ("unless-stopped", 0)),
        ("on-failure", ("on-failure", 0)),
        ("on-failure:3", ("on-failure", 3)),
        ("always:0", ("always", 0)),
    ],
)
def test_parse_restart_policy(value, expected):
    assert parse_restart_policy(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        # (CLI)
        ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
        (":3", "invalid restart policy format: no policy provided before colon"),
        # current moby; dockerd 20.10 says "maximum retry count cannot be used with restart
        # policy 'always'" and "invalid restart policy 'foo'"
        (
            "always:3",
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            "no:-1",
            "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative",
        ),
        ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
        (
            "foo",
            "invalid restart policy: unknown policy 'foo'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
        ),
    ],
)
def test_parse_restart_policy_errors(value, error):
    assert message(parse_restart_policy, value) == error


# --- env files ----------------------------------------------------------------------------------


def test_parse_env_file_like_the_cli():
    """The same bytes given to `docker create --env-file` (with FROMENV=hello exported)."""
    data = (
        b'\xef\xbb\xbf# comment\n\n  LEAD=x  \nQUOTED="a b"\nEMPTY=\nFROMENV\nMISSING\n'
        b"\tTAB=1\r\nA=b=c\n   # indented comment\nLAST=z"
    )
    assert parse_env_file(data, {"FROMENV": "hello"}) == [
        "LEAD=x  ",
        'QUOTED="a b"',
        "EMPTY=",
        "FROMENV=hello",
        "TAB=1",
        "A=b=c",
        "LAST=z",
    ]
    assert parse_env_file("K\n", lambda key: "v" if key == "K" else None) == ["K=v"]
    assert parse_env_file("K\n") == []  # no lookup: a bare key is dropped


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"BAD KEY=1\n", "invalid env file (env2): variable 'BAD KEY' contains whitespaces"),
        (b"BAD\tKEY\n", "invalid env file (env2): variable 'BAD\tKEY' contains whitespaces"),
        (b"=v\n", "invalid env file (env2): no variable name on line '=v'"),
        (b"A=1\n\xff\xfe\n", "invalid env file (env2): invalid utf8 bytes at line 2: [255 254]"),
        (b"A=" + b"x" * 70000, "invalid env file (env2): bufio.Scanner: token too long"),
    ],
)
def test_parse_env_file_errors(data, error):  # (CLI)
    assert message(parse_env_file, data, filename="env2") == error


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
        st.text(max_size=10).filter(lambda v: "\n" not in v and "\r" not in v),
    )
)
def test_env_file_round_trip(env):
    text = "".join(f"{k}={v}\n" for k, v in env.items())
    assert parse_env_file(text) == [f"{k}={v}" for k, v in env.items()]


# --- devices, cgroup rules, security options, signals --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/dev/zero", DeviceMapping("/dev/zero", "/dev/zero", "rwm")),
        ("/dev/zero:/dev/z", DeviceMapping("/dev/zero", "/dev/z", "rwm")),
        ("/dev/zero:r", DeviceMapping("/dev/zero", "/dev/zero", "r")),
        ("/dev/zero:/dev/z:rw", DeviceMapping("/dev/zero", "/dev/z", "rw")),
        ("/dev/zero/:/dev/z/", DeviceMapping("/dev/zero/", "/dev/z", "rwm")),  # CLI cleans dst
    ],
)
def test_parse_device(value, expected):
    assert parse_device(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("/dev/zero:/dev/z:rwx", "bad mode specified: rwx"),
        (":/dev/z", "bad format for path: :/dev/z"),
        ("/dev/zero:rel", "rel is not an absolute path"),
        ("/a:/b:r:w", "bad format for path: /a:/b:r:w"),
    ],
)
def test_parse_device_errors(value, error):  # (CLI)
    assert message(parse_device, value) == error


def test_parse_device_cgroup_rule():
    assert parse_device_cgroup_rule("c 42:* rmw") == {
        "allow": True,
        "type": "c",
        "major": 42,
        "minor": -1,
        "access": "rmw",
    }
    assert parse_device_cgroup_rule("a *:* r")["major"] == -1
    assert message(parse_device_cgroup_rule, "x") == "invalid device cgroup rule format: 'x'"
    assert (
        message(parse_device_cgroup_rule, "c 1:2 rwmr")
        == "invalid device cgroup rule format: 'c 1:2 rwmr'"
    )


def test_parse_security_opt():
    opts = parse_security_opt(
        ["no-new-privileges", "seccomp=unconfined", "apparmor:p", "label=disable"]
    )
    assert (opts.no_new_privileges, opts.seccomp, opts.apparmor, opts.labels) == (
        True,
        "unconfined",
        "p",
        ["disable"],
    )
    assert parse_security_opt(["no-new-privileges=false"]).no_new_privileges is False
    assert parse_security_opt(["writable-cgroups=T"]).writable_cgroups is True
    assert message(parse_security_opt, ["foo"]) == 'invalid --security-opt 1: "foo"'
    assert (
        message(parse_security_opt, ["no-new-privileges=maybe"])
        == 'invalid --security-opt 2: "no-new-privileges=maybe"'
    )
    assert message(parse_security_opt, ["what=x"]) == 'invalid --security-opt 2: "what=x"'


@pytest.mark.parametrize(
    ("value", "number"), [("SIGINT", 2), ("int", 2), ("9", 9), ("SIGRTMIN+1", 35), ("RTMAX", 64)]
)
def test_parse_signal(value, number):
    assert parse_signal(value) == number


@pytest.mark.parametrize("value", ["SIGFOO", "0", ""])
def test_parse_signal_errors(value):
    assert message(parse_signal, value) == f"Invalid signal: {value}"


def test_adapt_options_defaults_swap_to_twice_memory():
    assert adapt_options(RunOptions(memory=100)).memory_swap == 200
    assert adapt_options(RunOptions(memory=100, memory_swap=-1)).memory_swap == -1
    assert adapt_options(RunOptions(shm_size=0)).shm_size == 64 << 20


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        (RunOptions(memory=1 << 20), "Minimum memory limit allowed is 6MB"),
        (
            RunOptions(memory=64 << 20, memory_swap=32 << 20),
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            RunOptions(memory_swap=64 << 20),
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            RunOptions(memory_swappiness=101),
            "Invalid value: 101, valid memory swappiness range is 0-100",
        ),
        (RunOptions(memory_reservation=1 << 20), "Minimum memory reservation allowed is 6MB"),
        (
            RunOptions(nano_cpus=10**9, cpu_period=50000),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        # dockerd 20.10 capitalises "Range"; current moby does not
        (
            RunOptions(nano_cpus=100 * 10**9),
            "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            RunOptions(cpu_period=10),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (RunOptions(cpu_quota=10), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (
            RunOptions(oom_score_adj=2000),
            "Invalid value 2000, range for oom score adj is [-1000, 1000]",
        ),
        (RunOptions(shm_size=-1), "SHM size can not be less than 0"),
    ],
)
def test_validate_resources(opts, error):  # dockerd's messages for `docker create` with these
    assert message(validate_resources, opts, ncpu=2) == error


def test_validate_resources_warns():
    assert validate_resources(RunOptions(memory=64 << 20, memory_swappiness=-1), ncpu=2) == []
    (warning,) = validate_resources(RunOptions(oom_kill_disable=True), ncpu=2)
    assert warning.startswith("OOM killer is disabled for the container, but no memory limit")


# --- -v and tmpfs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/data", MountPoint("volume", "/data")),
        ("name:/data", MountPoint("volume", "/data", name="name")),
        (
            "name:/data:ro,nocopy",
            MountPoint("volume", "/data", name="name", rw=False, copy_data=False, mode="ro,nocopy"),
        ),
        ("/s:/d", MountPoint("bind", "/d", "/s", propagation="rprivate")),
        ("/s/./x/:/d/y/", MountPoint("bind", "/d/y", "/s/x", propagation="rprivate")),
        (
            "/s:/d:ro,rslave,z",
            MountPoint("bind", "/d", "/s", rw=False, propagation="rslave", mode="ro,rslave,z"),
        ),
    ],
)
def test_parse_bind(value, expected):
    assert parse_bind(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("/foo:rw", "invalid volume specification: '/foo:rw'"),
        ("/a:/b:xyz", "invalid mode: xyz"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        (
            "/a:/",
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'",
        ),
        (
            "name:rel",
            "invalid volume specification: 'name:rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            "/a:/b:nocopy",
            "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified",
        ),
        ("a:b:c:d:e", "invalid volume specification: 'a:b:c:d:e'"),
        (":/x", "invalid volume specification: ':/x'"),
    ],
)
def test_parse_bind_errors(value, error):  # (dockerd 20.10, same in current moby)
    assert message(parse_bind, value) == error


@pytest.mark.parametrize(
    ("options", "merged"),
    [
        (
            ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=10m", "mode=700"],
            ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=10m", "mode=700"],
        ),
        (
            ["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m"],
            ["nosuid", "nodev", "rprivate", "exec", "size=2m"],
        ),
        (
            ["noexec", "nosuid", "nodev", "rprivate", "shared", "defaults", "ro"],
            ["noexec", "nosuid", "nodev", "shared", "ro"],
        ),
    ],
)
def test_merge_tmpfs_options(options, merged):
    assert merge_tmpfs_options(options) == merged


# --- users --------------------------------------------------------------------------------------

RICH_PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
dup:x:2000:2000::/a:/bin/sh
dup:x:2001:2001::/b:/bin/sh
  spaced:x:3000:3000::/s:/bin/sh
broken:x:notanumber:7
"""
RICH_GROUP = """\
# a comment
root:x:0:
wheel:x:10:alice,root
staff:x:50:alice
alice:x:1000:
"""


@pytest.mark.parametrize(
    ("user", "extra", "expected"),
    [
        ("", [], (0, 0, [0, 10])),  # the uid-0 entry, and root's membership of wheel
        ("root", [], (0, 0, [0, 10])),
        ("alice", [], (1000, 1000, [1000, 10, 50])),
        ("1000", [], (1000, 1000, [1000, 10, 50])),
        ("alice:staff", [], (1000, 50, [50])),  # an explicit group: no membership lookup
        ("alice:7", [], (1000, 7, [7])),
        ("5000", [], (5000, 0, [0])),  # unknown numeric uid: gid stays 0
        ("5000:5000", [], (5000, 5000, [5000])),
        (":5", [], (0, 5, [5])),
        ("1:2:3", [], (1, 2, [2])),  # a named group beats the passwd gid; ":3" is ignored
        ("dup", [], (2000, 2000, [2000])),  # first match wins
        ("spaced", [], (3000, 3000, [3000])),  # lines are trimmed
        ("broken", [], (0, 7, [7])),  # bad numbers read as 0, as runc does
        ("alice", ["wheel", "99", "staff", "wheel"], (1000, 1000, [1000, 10, 50, 10, 99, 50])),
    ],
)
def test_resolve_user(user, extra, expected):
    assert resolve_user(user, RICH_PASSWD, RICH_GROUP, extra) == expected


@pytest.mark.parametrize(
    ("user", "extra", "error"),
    [
        ("nosuch", [], "unable to find user nosuch: no matching entries in passwd file"),
        ("alice:nogroup", [], "unable to find group nogroup: no matching entries in group file"),
        ("alice", ["nogroup"], "unable to find group nogroup: no matching entries in group file"),
        ("99999999999", [], "uids and gids must be in range 0-2147483647"),
        ("-1", [], "uids and gids must be in range 0-2147483647"),
        ("0:2147483648", [], "uids and gids must be in range 0-2147483647"),
    ],
)
def test_resolve_user_errors(user, extra, error):
    with pytest.raises(UserLookupError) as e:
        resolve_user(user, RICH_PASSWD, RICH_GROUP, extra)
    assert e.value.message == error


def test_missing_files_allow_numbers_only():
    assert resolve_user("5:6", None, None, ["7"]) == (5, 6, [6, 7])
    assert resolve_user("", None, None) == (0, 0, [0])
    with pytest.raises(UserLookupError, match="unable to find user root"):
        resolve_user("root", None, None)


def test_hostile_user_files_are_bounded():
    long_line = "x" * 70000 + "\n"
    with pytest.raises(UserLookupError) as e:
        resolve_user("root", long_line + PASSWD, GROUP)
    assert e.value.message == "unable to find user root: bufio.Scanner: token too long"
    with pytest.raises(UserLookupError) as e:
        resolve_user("root", PASSWD, GROUP + "g:x:1:" + "u," * 600000 + "\n")
    assert e.value.message == "unable to find groups for spec root: bufio.Scanner: token too long"
    with pytest.raises(UserLookupError) as e:
        resolve_user("5", PASSWD, "g:x:1:" + "u," * 600000 + "\n", ["a", "b"])
    assert (
        e.value.message == "unable to find additional groups [a b]: bufio.Scanner: token too long"
    )


def test_busybox_user_files():
    assert resolve_user("nobody", PASSWD, GROUP) == (65534, 65534, [65534])
    assert exec_user("nobody", PASSWD, GROUP)[3] == "/home"


names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True)
ids = st.integers(0, 2**31 - 1)


@given(st.dictionaries(names, st.tuples(ids, ids), min_size=1, max_size=6), st.data())
def test_user_resolution_round_trips(users, data):
    """Whatever passwd says about a name, resolving the name or its uid gives it back."""
    passwd = "".join(f"{n}:x:{u}:{g}::/home/{n}:/bin/sh\n" for n, (u, g) in users.items())
    name = data.draw(st.sampled_from(sorted(users)))
    uid, gid = users[name]
    assert resolve_user(name, passwd, "")[:2] == (uid, gid)
    first_with_uid = next(n for n, (u, _) in users.items() if u == uid)
    assert resolve_user(str(uid), passwd, "")[:2] == users[first_with_uid]
    assert resolve_user(f"{name}:{gid}", passwd, None) == (uid, gid, [gid])
