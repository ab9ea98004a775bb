"""Tests for the pflag-compatible parser.

Error strings were checked against the docker 28.2 CLI (e.g. ``docker ps -n abc``);
help texts are verbatim ``docker ... --help`` output at 80 columns.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli.flags import (
    Flag,
    FlagError,
    HelpRequested,
    flag_error_text,
    go_quote,
    parse,
    parse_go_bool,
    parse_go_int,
    usage_text,
)

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates"
)

PS_FLAGS = [
    Flag("all", "a", "bool", help="Show all containers (default shows just running)"),
    Flag(
        "filter", "f", "list", metavar="filter", help="Filter output based on conditions provided"
    ),
    Flag("format", None, "string", help=FORMAT_HELP),
    Flag(
        "last", "n", "int", default=-1, help="Show n last created containers (includes all states)"
    ),
    Flag("latest", "l", "bool", help="Show the latest created container (includes all states)"),
    Flag("no-trunc", None, "bool", help="Don't truncate output"),
    Flag("quiet", "q", "bool", help="Only display container IDs"),
    Flag("size", "s", "bool", help="Display total file sizes"),
    Flag("env", "e", "list", hidden=True),
    Flag("names", None, "csv"),
    Flag("opt", "o", "map"),
]
DEFAULTS = {
    "all": False,
    "filter": [],
    "format": "",
    "last": -1,
    "latest": False,
    "no-trunc": False,
    "quiet": False,
    "size": False,
    "env": [],
    "names": [],
    "opt": {},
}

PARSE_CASES = [
    ([], {}, []),
    (["-a"], {"all": True}, []),
    (["--all"], {"all": True}, []),
    (["--all=false"], {}, []),
    (["-a=false"], {}, []),
    (["--all=T"], {"all": True}, []),
    (["--all=0", "-q=1"], {"quiet": True}, []),
    (["-aq"], {"all": True, "quiet": True}, []),
    (["-aqn5"], {"all": True, "quiet": True, "last": 5}, []),
    (["-n", "5"], {"last": 5}, []),
    (["-n5"], {"last": 5}, []),
    (["-n=5"], {"last": 5}, []),
    (["-n", "-5"], {"last": -5}, []),
    (["--last", "0x10"], {"last": 16}, []),
    (["--last=017"], {"last": 15}, []),
    (["--last=1_0"], {"last": 10}, []),
    (["--last=0b11"], {"last": 3}, []),
    (["--format", "{{.ID}}"], {"format": "{{.ID}}"}, []),
    (["--format={{.ID}}"], {"format": "{{.ID}}"}, []),
    (["--format="], {}, []),
    (["--format", "--all"], {"format": "--all"}, []),
    (["-f", "a=1", "--filter=b=2", "-fc=3"], {"filter": ["a=1", "b=2", "c=3"]}, []),
    (["-f", "a,b"], {"filter": ["a,b"]}, []),
    (["--names", "a,b", "--names=c"], {"names": ["a", "b", "c"]}, []),
    (["--names", '"x,y",z'], {"names": ["x,y", "z"]}, []),
    (["-o", "a=1", "-ob", "--opt=c=d=e"], {"opt": {"a": "1", "b": "", "c": "d=e"}}, []),
    (["x", "-a", "y"], {"all": True}, ["x", "y"]),
    (["-", "-a"], {"all": True}, ["-"]),
    (["", "-a"], {"all": True}, [""]),
    (["-a", "--", "-q", "--x"], {"all": True}, ["-q", "--x"]),
    (["--help=false"], {}, []),
]


@pytest.mark.parametrize(("argv", "changed", "args"), PARSE_CASES)
def test_parse(argv, changed, args):
    values, positionals = parse(PS_FLAGS, argv)
    assert values == {**DEFAULTS, **changed}
    assert positionals == args


def test_not_interspersed_stops_at_first_positional():
    values, args = parse(PS_FLAGS, ["-a", "busybox", "ls", "-q", "--", "x"], interspersed=False)
    assert values["all"] is True and values["quiet"] is False
    assert args == ["busybox", "ls", "-q", "--", "x"]


ERROR_CASES = [
    (["--foo"], "unknown flag: --foo"),
    (["--foo=bar"], "unknown flag: --foo"),
    (["-x"], "unknown shorthand flag: 'x' in -x"),
    (["-aqx"], "unknown shorthand flag: 'x' in -x"),
    (["-="], "unknown shorthand flag: '=' in -="),
    (["-a="], "unknown shorthand flag: '=' in -="),
    (["--format"], "flag needs an argument: --format"),
    (["--filter"], "flag needs an argument: --filter"),
    (["-f"], "flag needs an argument: 'f' in -f"),
    (["-qf"], "flag needs an argument: 'f' in -f"),
    (["---x"], "bad flag syntax: ---x"),
    (["--=x"], "bad flag syntax: --=x"),
    (
        ["-n", "abc"],
        'invalid argument "abc" for "-n, --last" flag: strconv.ParseInt: parsing "abc": '
        "invalid syntax",
    ),
    (
        ["-n="],
        'invalid argument "=" for "-n, --last" flag: strconv.ParseInt: parsing "=": invalid syntax',
    ),
    (
        ["--last="],
        'invalid argument "" for "-n, --last" flag: strconv.ParseInt: parsing "": invalid syntax',
    ),
    (
        ["--last", "99999999999999999999"],
        'invalid argument "99999999999999999999" for "-n, --last" flag: strconv.ParseInt: '
        'parsing "99999999999999999999": value out of range',
    ),
    (
        ["-a=maybe"],
        'invalid argument "maybe" for "-a, --all" flag: strconv.ParseBool: parsing "maybe": '
        "invalid syntax",
    ),
    (
        ["--no-trunc="],
        'invalid argument "" for "--no-trunc" flag: strconv.ParseBool: parsing "": invalid syntax',
    ),
    (
        ["--help=foo"],
        'invalid argument "foo" for "--help" flag: strconv.ParseBool: parsing "foo": invalid syntax',
    ),
]


@pytest.mark.parametrize(("argv", "message"), ERROR_CASES)
def test_errors(argv, message):
    with pytest.raises(FlagError) as exc:
        parse(PS_FLAGS, argv)
    assert exc.value.message == message == str(exc.value)


@pytest.mark.parametrize(
    ("argv", "shorthand"),
    [(["--help"], False), (["-h"], True), (["-qh"], True), (["x", "--help"], False)],
)
def test_help(argv, shorthand):
    with pytest.raises(HelpRequested) as exc:
        parse(PS_FLAGS, argv)
    assert exc.value.shorthand is shorthand


def test_errors_win_over_help_like_cobra():
    with pytest.raises(FlagError):
        parse(PS_FLAGS, ["--help", "--foo"])


def test_defaults_are_not_shared_between_parses():
    flags = [Flag("env", "e", "list", default=["A=1"])]
    first, _ = parse(flags, ["-e", "B=2", "-e", "C=3"])
    second, _ = parse(flags, [])
    assert first["env"] == ["B=2", "C=3"]  # the first value replaces the default, as in pflag
    assert second["env"] == ["A=1"]


def test_convert_errors_are_invalid_arguments():
    def mem(value):
        raise ValueError(f"invalid size: '{value}'")

    with pytest.raises(FlagError) as exc:
        parse([Flag("memory", "m", "string", convert=mem)], ["-m", "x"])
    assert str(exc.value) == 'invalid argument "x" for "-m, --memory" flag: invalid size: \'x\''


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("t", True), ("TRUE", True), ("True", True), ("0", False), ("F", False)],
)
def test_parse_go_bool(text, value):
    assert parse_go_bool(text) is value


@pytest.mark.parametrize("text", ["yes", "tRUE", "", " 1", "2"])
def test_parse_go_bool_rejects(text):
    with pytest.raises(ValueError, match=r"^strconv\.ParseBool: parsing "):
        parse_go_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-0", 0),
        ("+7", 7),
        ("0x_1f", 31),
        ("0O17", 15),
        ("0_7", 7),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_parse_go_int(text, value):
    assert parse_go_int(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "invalid syntax"),
        ("0x", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("_1", "invalid syntax"),
        ("09", "invalid syntax"),
        (" 1", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
    ],
)
def test_parse_go_int_rejects(text, why):
    with pytest.raises(ValueError) as exc:
        parse_go_int(text)
    assert str(exc.value) == f"strconv.ParseInt: parsing {go_quote(text)}: {why}"


def test_go_quote():
    assert (
        go_quote('a"b\\c\n\t\x01\x7fé\u00a0\U0001f600') == '"a\\"b\\\\c\\n\\t\\x01\\x7fé\\u00a0😀"'
    )


PS_HELP = """\
Usage:  docker ps [OPTIONS]

List containers

Aliases:
  docker container ls, docker container list, docker container ps, docker ps

Options:
  -a, --all             Show all containers (default shows just running)
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template:
                        'table':            Print output in table format
                        with column headers (default)
                        'table TEMPLATE':   Print output in table format
                        using the given Go template
                        'json':             Print in JSON format
                        'TEMPLATE':         Print output using the given
                        Go template.
                        Refer to https://docs.docker.com/go/formatting/
                        for more information about formatting output with
                        templates
  -n, --last int        Show n last created containers (includes all
                        states) (default -1)
  -l, --latest          Show the latest created container (includes all
                        states)
      --no-trunc        Don't truncate output
  -q, --quiet           Only display container IDs
  -s, --size            Display total file sizes
"""

VOLUME_CREATE_HELP = """\
Usage:  docker volume create [OPTIONS] [VOLUME]

Create a volume

Options:
  -d, --driver string   Specify volume driver name (default "local")
      --label list      Set metadata for a volume
  -o, --opt map         Set driver specific options (default map[])
"""

VOLUME_HELP = """\
Usage:  docker volume COMMAND

Manage volumes

Commands:
  create      Create a volume
  inspect     Display detailed information on one or more volumes
  ls          List volumes
  prune       Remove unused local volumes
  rm          Remove one or more volumes

Run 'docker volume COMMAND --help' for more information on a command.
"""


def test_usage_text_matches_docker():
    aliases = ["docker container ls", "docker container list", "docker container ps", "docker ps"]
    flags = [f for f in PS_FLAGS if f.long not in ("names", "opt")]
    text = usage_text("docker ps", "[OPTIONS]", "List containers", flags, aliases=aliases, width=80)
    assert text == PS_HELP
    vc = [
        Flag("driver", "d", "string", default="local", help="Specify volume driver name"),
        Flag("label", None, "list", help="Set metadata for a volume"),
        Flag("opt", "o", "map", help="Set driver specific options"),
    ]
    text = usage_text("docker volume create", "[OPTIONS] [VOLUME]", "Create a volume", vc, width=80)
    assert text == VOLUME_CREATE_HELP
    subs = [
        ("create", "Create a volume"),
        ("inspect", "Display detailed information on one or more volumes"),
        ("ls", "List volumes"),
        ("prune", "Remove unused local volumes"),
        ("rm", "Remove one or more volumes"),
    ]
    text = usage_text("docker volume", "", "Manage volumes", [], subcommands=subs, width=80)
    assert text == VOLUME_HELP


def test_usage_backquoted_name_and_flag_error_text():
    flags = [Flag("time", "t", "int", default=10, help="Seconds to wait (`secs`)")]
    assert usage_text("docker stop", "", "Stop", flags, width=80).endswith(
        "  -t, --time secs   Seconds to wait (secs) (default 10)\n"
    )
    assert flag_error_text("unknown flag: --foo", "docker images", "[OPTIONS]") == (
        "unknown flag: --foo\n\nUsage:  docker images [OPTIONS]\n\n"
        "Run 'docker images --help' for more information"
    )


_TOKENS = {
    "all": (["-a"], True),
    "quiet": (["--quiet"], True),
    "last": (["-n", "3"], 3),
    "format": (["--format={{.ID}}"], "{{.ID}}"),
    "no-trunc": (["--no-trunc=true"], True),
    "size": (["-s"], True),
}


@given(st.permutations(list(_TOKENS)), st.lists(st.sampled_from(["x", "y", "-"]), max_size=3))
def test_flag_order_does_not_matter(order, positionals):
    groups = [_TOKENS[name][0] for name in order]
    groups.insert(len(groups) // 2, positionals)  # positionals may sit between flags
    argv = [tok for group in groups for tok in group]
    values, args = parse(PS_FLAGS, argv)
    assert values == {**DEFAULTS, **{k: v for k, (_, v) in _TOKENS.items()}}
    assert args == positionals


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int_round_trip(n):
    assert parse(PS_FLAGS, [f"--last={n}"])[0]["last"] == n
    assert parse_go_int(hex(n)) == n  # Python's hex() spelling is also a Go literal
