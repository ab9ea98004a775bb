"""`--change` lines applied to an image config (dockyard.image.changes).

Expected values marked "docker" were read from a real dockerd 20.10 with
`docker import --change ... && docker image inspect --format '{{json .Config}}'` (and
`docker commit --change` for the ENTRYPOINT/Cmd interplay). Where current moby (the Dockerfile
parser and shell lexer vendored from buildkit) differs from 20.10, the test follows current moby
and says so; error messages whose capitalisation changed between the two are matched without
regard to case.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.image.changes import apply_changes, parse_duration
from dockyard.image.shellwords import expand, expand_words, split_words

# -- agreed with docker ------------------------------------------------------------------------

DOCKER = [
    # CMD / ENTRYPOINT: shell form keeps the raw text, JSON form only for an array of strings.
    (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
    (["CMD    echo   hi   "], {"Cmd": ["/bin/sh", "-c", "echo   hi"]}),
    (['CMD ["echo","hi"]'], {"Cmd": ["echo", "hi"]}),
    (['CMD ["echo", "hi" ]'], {"Cmd": ["echo", "hi"]}),
    (["CMD ['echo','hi']"], {"Cmd": ["/bin/sh", "-c", "['echo','hi']"]}),
    (["CMD [echo"], {"Cmd": ["/bin/sh", "-c", "[echo"]}),
    (["CMD"], {"Cmd": ["/bin/sh", "-c"]}),
    (["CMD []"], {}),
    (["CMD $HOME"], {"Cmd": ["/bin/sh", "-c", "$HOME"]}),
    (['ENTRYPOINT /bin/sh -c "x"'], {"Entrypoint": ["/bin/sh", "-c", '/bin/sh -c "x"']}),
    (['ENTRYPOINT ["/bin/true"]'], {"Entrypoint": ["/bin/true"]}),
    (["ENTRYPOINT []"], {}),
    (["ENTRYPOINT"], {}),
    (['CMD ["a"]', 'ENTRYPOINT ["b"]'], {"Entrypoint": ["b"], "Cmd": ["a"]}),
    (['ENTRYPOINT ["b"]', 'CMD ["a"]'], {"Entrypoint": ["b"], "Cmd": ["a"]}),
    (["   cmd echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
    (["env a=1", "Cmd x"], {"Env": ["a=1"], "Cmd": ["/bin/sh", "-c", "x"]}),
    # ENV: both forms, quoting, escapes.
    (['ENV A=1 B="x y"'], {"Env": ["A=1", "B=x y"]}),
    (["ENV A 1 2  3"], {"Env": ["A=1 2  3"]}),
    (['ENV A "x y"'], {"Env": ["A=x y"]}),
    (['ENV A 1 "2  3"  $HOME x\\ y'], {"Env": ["A=1 2  3   x y"]}),
    (["ENV A B=c"], {"Env": ["A=B=c"]}),
    (["ENV A=1", "ENV A=2"], {"Env": ["A=2"]}),
    (["ENV A=1 B=2", "ENV A=3"], {"Env": ["A=3", "B=2"]}),
    (
        ['ENV A=a\\ b C="q\\"r" D=x\\\\y E=\'s\\t\''],
        {"Env": ["A=a b", 'C=q"r', "D=x\\y", "E=s\\t"]},
    ),
    (["ENV A=\"\"  B=''"], {"Env": ["A=", "B="]}),
    (['ENV "A B"=1'], {"Env": ["A B=1"]}),
    (["  ENV A=1  "], {"Env": ["A=1"]}),
    (["ENV A=1\tB=2"], {"Env": ["A=1", "B=2"]}),
    (["ENV\tA=1"], {"Env": ["A=1"]}),
    # $VAR expansion against the environment as it was before the instruction.
    (
        ["ENV A=1", "ENV B=$A-${A}-${C:-def}-${A:+alt}"],
        {"Env": ["A=1", "B=1-1-def-alt"]},
    ),
    (
        ["ENV A=1", "ENV B='$A' C=\"$A\" D=\\$A"],
        {"Env": ["A=1", "B=$A", "C=1", "D=$A"]},
    ),
    (["ENV A=1 B=$A"], {"Env": ["A=1", "B="]}),
    (["ENV A=1", "ENV B $A \"$A\" '$A'"], {"Env": ["A=1", "B=1 1 $A"]}),
    (["ENV A=1", "ENV B=${A}x${A:-y}${Z:-$A}${A:+${A}2}"], {"Env": ["A=1", "B=1x1112"]}),
    (["ENV A=1", "ENV B=${A?err}"], {"Env": ["A=1", "B=1"]}),
    (["ENV A=1", "ENV B=${A:?} C=${Z:-}"], {"Env": ["A=1", "B=1", "C="]}),
    (["ENV A=1", "ENV B=$A$"], {"Env": ["A=1", "B=1$"]}),
    (["ENV A=1", "ENV B=$"], {"Env": ["A=1", "B=$"]}),
    (
        ["ENV A=1", "ENV B=a$$b C=$1x D=${1} E=$-x F=$@"],
        {"Env": ["A=1", "B=ab", "C=x", "D=", "E=x", "F="]},
    ),
    (["ENV A=1", 'ENV B=\\$A\\\\ C="a\\b"'], {"Env": ["A=1", "B=$A\\", "C=a\\b"]}),
    (["ENV a=1 A=2", "ENV b=$a$A"], {"Env": ["a=1", "A=2", "b=12"]}),
    # Changes are one Dockerfile: comments, continuations across --change values.
    (["ENV A=1 \\", "B=2"], {"Env": ["A=1", "B=2"]}),
    (["ENV A=1", "ENV B=x\\"], {"Env": ["A=1", "B=x"]}),
    (["# comment", "ENV A=1"], {"Env": ["A=1"]}),
    (["CMD x \\", "  # c", "", "  y"], {"Cmd": ["/bin/sh", "-c", "x   y"]}),
    # LABEL
    (
        ['LABEL a=b "c d"="e f" g=$HOME'],
        {"Labels": {"a": "b", "c d": "e f", "g": ""}},
    ),
    (["LABEL a b c"], {"Labels": {"a": "b c"}}),
    (['LABEL ""=x'], {"Labels": {"": "x"}}),  # the name is blank only after quote removal
    (["ENV A='x\\'"], {"Env": ["A=x\\"]}),  # no escapes inside single quotes
    (["LABEL a=1", "LABEL a=2 b=3"], {"Labels": {"a": "2", "b": "3"}}),
    (
        ["ENV A=x", "LABEL \"$A\"=\"$A\" '$A'='$A'"],
        {"Env": ["A=x"], "Labels": {"x": "x", "$A": "$A"}},
    ),
    # EXPOSE: ranges, protocols, host parts, word splitting of an expanded variable.
    (
        ["EXPOSE 80 443/udp 8000-8002 53/UDP"],
        {
            "ExposedPorts": {
                "443/udp": {},
                "53/udp": {},
                "80/tcp": {},
                "8000/tcp": {},
                "8001/tcp": {},
                "8002/tcp": {},
            }
        },
    ),
    (
        ['ENV P="80 81"', "EXPOSE $P"],
        {"ExposedPorts": {"80/tcp": {}, "81/tcp": {}}, "Env": ["P=80 81"]},
    ),
    (["EXPOSE 0"], {"ExposedPorts": {"0/tcp": {}}}),
    (["EXPOSE 8080:80 1.2.3.4:81:81/udp"], {"ExposedPorts": {"80/tcp": {}, "81/udp": {}}}),
    (["EXPOSE 80/"], {"ExposedPorts": {"80/tcp": {}}}),
    (["EXPOSE 80-80"], {"ExposedPorts": {"80/tcp": {}}}),
    (["EXPOSE 80/SCTP"], {"ExposedPorts": {"80/sctp": {}}}),
    (['EXPOSE "80"'], {"ExposedPorts": {"80/tcp": {}}}),
    (
        ["ENV A=1", "EXPOSE $A/udp ${A}0"],
        {"Env": ["A=1"], "ExposedPorts": {"1/udp": {}, "10/tcp": {}}},
    ),
    # VOLUME: JSON or whitespace-separated words, each expanded.
    (["VOLUME /a /b"], {"Volumes": {"/a": {}, "/b": {}}}),
    (["VOLUME /a\t/b"], {"Volumes": {"/a": {}, "/b": {}}}),
    (['VOLUME ["/c", "/d"]'], {"Volumes": {"/c": {}, "/d": {}}}),
    (
        ["ENV V=/v", 'VOLUME ["$V", "${V}2"]', "VOLUME $V/x"],
        {"Env": ["V=/v"], "Volumes": {"/v": {}, "/v/x": {}, "/v2": {}}},
    ),
    # WORKDIR: relative to the current one, the whole rest is one word.
    (["WORKDIR a", "WORKDIR b/../c", "WORKDIR ./d/"], {"WorkingDir": "/a/c/d"}),
    (["ENV D=/data", "WORKDIR $D", "WORKDIR sub"], {"Env": ["D=/data"], "WorkingDir": "/data/sub"}),
    (['WORKDIR "/x y"'], {"WorkingDir": "/x y"}),
    (["WORKDIR /x y"], {"WorkingDir": "/x y"}),
    (["WORKDIR /a", "WORKDIR .."], {"WorkingDir": "/"}),
    (["WORKDIR /a", "WORKDIR ../../.."], {"WorkingDir": "/"}),
    # USER
    (["USER 1000:1000"], {"User": "1000:1000"}),
    (["ENV U=nobody", "USER $U"], {"User": "nobody", "Env": ["U=nobody"]}),
    (["USER a   b"], {"User": "a   b"}),
    (['USER "a b" c'], {"User": "a b c"}),
    # ONBUILD keeps the original text of the trigger.
    (['ONBUILD RUN echo $HOME   "x"'], {"OnBuild": ['RUN echo $HOME   "x"']}),
    (["onbuild  run echo hi"], {"OnBuild": ["run echo hi"]}),
    (["ONBUILD RUN a", "ONBUILD RUN b"], {"OnBuild": ["RUN a", "RUN b"]}),
    (["ONBUILD RUN x   "], {"OnBuild": ["RUN x   "]}),
    # HEALTHCHECK
    (
        ["HEALTHCHECK CMD curl -f http://x/ || exit 1"],
        {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"]}},
    ),
    (
        [
            "HEALTHCHECK --interval=5m --timeout=3s --retries=4 --start-period=1m30s "
            'CMD ["curl","-f"]'
        ],
        {
            "Healthcheck": {
                "Test": ["CMD", "curl", "-f"],
                "Interval": 300_000_000_000,
                "Timeout": 3_000_000_000,
                "StartPeriod": 90_000_000_000,
                "Retries": 4,
            }
        },
    ),
    (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["HEALTHCHECK none"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["HEALTHCHECK --interval=5m NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["HEALTHCHECK cmd echo"], {"Healthcheck": {"Test": ["CMD-SHELL", "echo"]}}),
    (
        ["HEALTHCHECK --interval=1ms CMD x"],
        {"Healthcheck": {"Test": ["CMD-SHELL", "x"], "Interval": 1_000_000}},
    ),
    (["HEALTHCHECK CMD [curl"], {"Healthcheck": {"Test": ["CMD-SHELL", "[curl"]}}),
    (
        ['HEALTHCHECK --interval="5s" CMD x'],
        {"Healthcheck": {"Test": ["CMD-SHELL", "x"], "Interval": 5_000_000_000}},
    ),
    (
        ["HEALTHCHECK --interval=1.5s CMD x"],
        {"Healthcheck": {"Test": ["CMD-SHELL", "x"], "Interval": 1_500_000_000}},
    ),
]


@pytest.mark.parametrize(("changes", "expected"), DOCKER)
def test_matches_docker(changes: list[str], expected: dict) -> None:
    assert apply_changes({}, changes) == expected


DOCKER_ERRORS = [
    (["ENV A"], "ENV must have two arguments"),
    (["ENV =x"], "ENV names can not be blank"),
    (["ENV A=1 B"], 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
    (
        ["ENV X=v", "LABEL a=$X b"],
        'Syntax error - can\'t find = in "b". Must be of the form: name=value',
    ),
    (['ENV A="unterminated'], 'failed to process "\\"unterminated": unexpected end of statement'),
    (["ENV A='x"], "unexpected end of statement while looking for matching single-quote"),
    (["ENV B=${Z?must}"], 'failed to process "${Z?must}": Z: must'),
    (["ENV A=", "ENV B=${A:?must}"], 'failed to process "${A:?must}": A: must'),
    (["ENV B=${}"], 'failed to process "${}": syntax error: bad substitution'),
    (["ENV B=${:x}"], 'failed to process "${:x}": syntax error: bad substitution'),
    (["ENV A=1", "ENV C=${A"], 'failed to process "${A"'),
    (['CMD ["a", 1]'], "when using JSON array syntax, arrays must be comprised of strings only"),
    (["CMD --version"], "(?i)unknown flag: (--)?version"),
    (["ENV --x=1 A=b"], "(?i)unknown flag: (--)?x"),
    (["# comment"], "file with no instructions"),
    (["ADD . /"], "(?i)^add is not a valid change command$"),
    (["Run echo"], "(?i)^run is not a valid change command$"),
    (["FOO bar"], "(?i)^foo is not a valid change command$"),
    (["EXPOSE"], "EXPOSE requires at least one argument"),
    (["EXPOSE abc"], "(?i)invalid containerPort: abc"),
    (["EXPOSE 65536"], "(?i)invalid containerPort: 65536"),
    (["EXPOSE 90-80"], "(?i)invalid containerPort: 90-80"),
    (["EXPOSE 80/xyz"], "(?i)invalid proto: xyz"),
    (["EXPOSE /tcp"], "(?i)no port specified: /tcp<empty>"),
    (["VOLUME"], "VOLUME requires at least one argument"),
    (['VOLUME [""]'], "VOLUME specified can not be an empty string"),
    (['VOLUME ["$V"]'], "VOLUME specified can not be an empty string"),
    (
        ["ENV V=/v", 'VOLUME $V "/x y"'],
        "unexpected end of statement while looking for matching double-quote",
    ),
    (["WORKDIR"], "WORKDIR requires exactly one argument"),
    (["USER"], "USER requires exactly one argument"),
    (["ONBUILD"], "ONBUILD requires at least one argument"),
    (["ONBUILD ONBUILD RUN x"], "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    (["ONBUILD FROM x"], "FROM isn't allowed as an ONBUILD trigger"),
    (["ONBUILD ENV A"], "ENV must have two arguments"),
    (['ONBUILD RUN ["a", 1]'], "arrays must be comprised of strings only"),
    (["HEALTHCHECK NONE x"], "HEALTHCHECK NONE takes no arguments"),
    (["HEALTHCHECK CMD"], "Missing command after HEALTHCHECK CMD"),
    (["HEALTHCHECK --foo=1 CMD x"], "(?i)unknown flag: (--)?foo"),
    (["HEALTHCHECK --interval=abc CMD x"], 'time: invalid duration "abc"'),
    (["HEALTHCHECK --retries=x CMD x"], 'strconv.ParseInt: parsing "x": invalid syntax'),
    (["HEALTHCHECK --interval 5s CMD x"], "(?i)missing a value on flag: (--)?interval"),
    (["HEALTHCHECK RUN x"], 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    (['CMD echo "unterminated'], None),  # shell form is not processed: no error
]


@pytest.mark.parametrize(("changes", "message"), DOCKER_ERRORS)
def test_errors_match_docker(changes: list[str], message: str | None) -> None:
    if message is None:
        assert apply_changes({}, changes)["Cmd"][2] == 'echo "unterminated'
        return
    with pytest.raises(InvalidParameter) as info:
        apply_changes({}, changes)
    if message.startswith("(?i)"):  # a regular expression, for wording 20.10 capitalised
        assert re.search(message, info.value.message), info.value.message
    else:
        assert message in info.value.message
    assert info.value.status == 400


def test_an_error_applies_nothing_and_never_touches_the_input() -> None:
    config = {"Env": ["A=1"], "Cmd": ["sh"]}
    with pytest.raises(InvalidParameter):
        apply_changes(config, ["ENV B=2", "EXPOSE nope"])
    assert config == {"Env": ["A=1"], "Cmd": ["sh"]}
    # A later line that does not parse fails before any line is applied.
    with pytest.raises(InvalidParameter, match="not a valid change command"):
        apply_changes(config, ["ENV B=2", "COPY a b"])


def test_no_changes_is_an_unchanged_copy() -> None:
    config = {"Env": ["A=1"], "Labels": {"x": "y"}}
    result = apply_changes(config, [])
    assert result == config
    result["Labels"]["x"] = "z"
    assert config["Labels"] == {"x": "y"}


# -- applied to an existing config (docker commit) ----------------------------------------------


def test_entrypoint_clears_cmd_unless_a_cmd_came_first() -> None:
    # docker commit --change on a busybox container created with `sh` (Cmd ["sh"]).
    base = {"Env": ["PATH=/bin"], "Cmd": ["sh"]}
    assert apply_changes(base, ['ENTRYPOINT ["/bin/echo"]']) == {
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/bin/echo"],
    }
    both = {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/echo"], "Cmd": ["x"]}
    assert apply_changes(base, ['CMD ["x"]', 'ENTRYPOINT ["/bin/echo"]']) == both
    assert apply_changes(base, ['ENTRYPOINT ["/bin/echo"]', 'CMD ["x"]']) == both
    # An empty CMD does not count as set.
    assert apply_changes(base, ["CMD []", 'ENTRYPOINT ["/bin/echo"]']) == {
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/bin/echo"],
    }


def test_commit_changes_see_the_containers_environment() -> None:
    base = {"Env": ["PATH=/bin", "HOME=/root"], "WorkingDir": "/srv"}
    result = apply_changes(base, ["ENV B=$PATH:/x", "WORKDIR rel", "ENV HOME=/h"])
    assert result["Env"] == ["PATH=/bin", "HOME=/h", "B=/bin:/x"]
    assert result["WorkingDir"] == "/srv/rel"
    assert apply_changes({"Env": ["V=/data"]}, ["VOLUME $V"])["Volumes"] == {"/data": {}}
    # Entries ENV does not name are left exactly as they were.
    env = ["PATH=/bin", "NOVALUE", "X=a=b"]
    assert apply_changes({"Env": env}, ["ENV A=1"])["Env"] == [*env, "A=1"]
    assert apply_changes({"Env": env}, ["ENV NOVALUE=v"])["Env"] == [
        "PATH=/bin",
        "NOVALUE=v",
        "X=a=b",
    ]


def test_merges_into_existing_maps_and_lists() -> None:
    base = {
        "Labels": {"a": "1"},
        "ExposedPorts": {"22/tcp": {}},
        "Volumes": {"/v": {}},
        "OnBuild": ["RUN a"],
        "Healthcheck": {"Test": ["CMD-SHELL", "old"], "Retries": 9},
    }
    result = apply_changes(
        base,
        ["LABEL b=2", "EXPOSE 80", "VOLUME /w", "ONBUILD RUN b", "HEALTHCHECK CMD new"],
    )
    assert result == {
        "Labels": {"a": "1", "b": "2"},
        "ExposedPorts": {"22/tcp": {}, "80/tcp": {}},
        "Volumes": {"/v": {}, "/w": {}},
        "OnBuild": ["RUN a", "RUN b"],
        "Healthcheck": {"Test": ["CMD-SHELL", "new"]},
    }
    assert base["Labels"] == {"a": "1"}


# -- current moby where 20.10 differed -------------------------------------------------------

MOBY = [
    # STOPSIGNAL became a valid change command after 20.10 (validated by moby/sys/signal).
    (["STOPSIGNAL SIGKILL"], {"StopSignal": "SIGKILL"}),
    (["STOPSIGNAL 9"], {"StopSignal": "9"}),
    (["STOPSIGNAL sigterm"], {"StopSignal": "sigterm"}),
    (["STOPSIGNAL RTMIN+3"], {"StopSignal": "RTMIN+3"}),
    (["ENV S=SIGINT", "STOPSIGNAL $S"], {"Env": ["S=SIGINT"], "StopSignal": "SIGINT"}),
    (["STOPSIGNAL --x SIGHUP"], {"StopSignal": "SIGHUP"}),  # STOPSIGNAL ignores flags
    # normalizeWorkdir cleans absolute paths too (20.10 kept "/a/b/").
    (["WORKDIR /a/b/"], {"WorkingDir": "/a/b"}),
    (["WORKDIR //a//b"], {"WorkingDir": "/a/b"}),
    # buildkit's lexer: ${VAR-w} ${VAR+w} and patterns (20.10: "missing ':' in substitution").
    (
        ["ENV A=1 E=", "ENV B=${A-x}${Z-y}${E-z} C=${A+x}${Z+y}${E+z}"],
        {"Env": ["A=1", "E=", "B=1y", "C=xz"]},
    ),
    (
        ["ENV A=hello", "ENV B=${A#he} C=${A%lo} D=${A/l/L} F=${A//l/L}"],
        {"Env": ["A=hello", "B=llo", "C=hel", "D=heLlo", "F=heLLo"]},
    ),
    # An interval of 0 means the default; retries 0 is allowed.
    (["HEALTHCHECK --interval=0 --retries=0 CMD x"], {"Healthcheck": {"Test": ["CMD-SHELL", "x"]}}),
    (
        ["HEALTHCHECK --start-interval=2s CMD x"],
        {"Healthcheck": {"Test": ["CMD-SHELL", "x"], "StartInterval": 2_000_000_000}},
    ),
]


@pytest.mark.parametrize(("changes", "expected"), MOBY)
def test_matches_current_moby(changes: list[str], expected: dict) -> None:
    assert apply_changes({}, changes) == expected


MOBY_ERRORS = [
    (["STOPSIGNAL FOO"], "invalid signal: FOO"),
    (["STOPSIGNAL 0"], "invalid signal: 0"),
    (["STOPSIGNAL"], "STOPSIGNAL requires exactly one argument"),
    (["ADD . /"], "ADD is not a valid change command"),  # the instruction as written
    (["HEALTHCHECK --retries=-1 CMD x"], "--retries cannot be negative (-1)"),
    (["HEALTHCHECK --retries=99999999999 CMD x"], "value out of range"),
    (["HEALTHCHECK --interval=500us CMD x"], 'Interval "interval" cannot be less than 1ms'),
    (["HEALTHCHECK --timeout=-1s CMD x"], 'Interval "timeout" cannot be less than 1ms'),
    (["HEALTHCHECK --interval=1s --interval=2s CMD x"], "duplicate flag specified: --interval"),
    (["HEALTHCHECK --interval=1s RUN x"], 'Unknown type "RUN"'),
    (["HEALTHCHECK"], "HEALTHCHECK requires at least one argument"),
    (["EXPOSE 1.2.3:80:80"], "invalid IP address"),
    (["ENV A=${A:=x}"], "unsupported modifier (:=) in substitution"),
    (["ENV A=${A:#x}"], "unsupported modifier (:#) in substitution"),
    (["ENV A=${A/x"], "syntax error: missing '/' in ${}"),
    (["ENV A=${A:"], "syntax error: missing '}'"),
]


@pytest.mark.parametrize(("changes", "message"), MOBY_ERRORS)
def test_errors_match_current_moby(changes: list[str], message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        apply_changes({}, changes)
    assert message in info.value.message


# -- the shell lexer, against buildkit's own test vectors (shell/envVarTest, wordsTest) ---------

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

WORD_VECTORS = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", None),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", None),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', None),
    ('"hello\\"', None),
    ("'hello\\'", "hello\\"),
    ("\"''\"", "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}aaa", "${}aaa"),
    ("he${}xx", None),
    ("he${hi}xx", "hexx"),
    ("he${.}", None),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${PWD?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", None),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("'he${XX}'", "he${XX}"),
    ("\"he'$PWD'\"", "he'/home'"),
    ("'\\$PWD'", "\\$PWD"),
    ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안'녕'하세요", "안녕하세요"),
    ("안녕$KOREAN", "안녕한국어"),
    ("${aaa}}", "}"),
    ("${aaa:-bbb ${foo}", None),
    ("${aaa:-bbb {foo}", "bbb {foo"),
    ("${:-bbb}", None),
    ("$999aaa", "aaa"),
    ("${001:-bbb}aaa", "bbbaaa"),
    ("$@@@", "@@"),
    ("${$:-bbb}", "bbb"),
]


@pytest.mark.parametrize(("word", "expected"), WORD_VECTORS)
def test_expand_buildkit_vectors(word: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidParameter, match=r"^failed to process "):
            expand(word, ENV)
    else:
        assert expand(word, ENV) == expected


WORDS_ENV = {"space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}
WORDS_VECTORS = [
    ("hello${space}bye", ["helloabc", "defbye"]),
    ('hello"${space}"bye', ["helloabc  defbye"]),
    ('hello "${space}"bye', ["hello", "abc  defbye"]),
    ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]),
    ("hello${trailing}d", ["helloab", "c", "d"]),
    ('hel"lo${trailing}"', ["helloab c   "]),
    ("hello\\ there", ["hello there"]),
    ('hello\\" there', ['hello"', "there"]),
    ("hello'$there'", ["hello$there"]),
    ('"" x', ["x"]),
]


@pytest.mark.parametrize(("word", "expected"), WORDS_VECTORS)
def test_expand_words_buildkit_vectors(word: str, expected: list[str]) -> None:
    assert expand_words(word, WORDS_ENV) == expected


def test_split_words_keeps_quotes_for_expand() -> None:
    assert split_words('a=b "c d"="e f"  g\\ h') == ["a=b", '"c d"="e f"', "g\\ h"]
    assert split_words("'it''s' \"\" x\\") == ["'it''s'", '""', "x"]
    assert split_words("   ") == []


@given(st.text(alphabet=st.characters(blacklist_characters="\\$'\"", blacklist_categories=["Cs"])))
def test_expand_is_identity_without_special_characters(word: str) -> None:
    assert expand(word, {"A": "x"}) == word


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_VALUE = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20)


def _double_quoted(value: str) -> str:
    return '"' + "".join("\\" + c if c in '"$\\' else c for c in value) + '"'


@given(st.dictionaries(_NAME, _VALUE, min_size=1, max_size=5))
def test_env_round_trips_any_value(values: dict[str, str]) -> None:
    line = "ENV " + " ".join(f"{k}={_double_quoted(v)}" for k, v in values.items())
    assert apply_changes({}, [line])["Env"] == [f"{k}={v}" for k, v in values.items()]


@given(_NAME, _VALUE)
def test_variables_expand_to_their_value(name: str, value: str) -> None:
    env = {name: value}
    assert expand(f"${{{name}}}", env) == value
    assert expand(f"x${{{name}}}y", env) == f"x{value}y"
    assert expand(f"'${name}'", env) == f"${name}"
    assert expand(f"${{{name}:+set}}", env) == ("set" if value else "")


_CHANGE_TEXT = st.lists(
    st.sampled_from(
        [
            *" \t\\\"'$:{}[]-+?#%/=.*aZ09\n",
            *("ENV ", "CMD ", "EXPOSE ", "HEALTHCHECK ", "--interval=", "VOLUME ", "ONBUILD "),
            *("LABEL ", "${A", "STOPSIGNAL ", "WORKDIR ", "USER ", "ENTRYPOINT ", "NONE"),
        ]
    ),
    max_size=16,
).map("".join)


@given(st.lists(_CHANGE_TEXT, min_size=1, max_size=3))
def test_hostile_input_gets_invalid_parameter_or_a_config(changes: list[str]) -> None:
    config = {"Env": ["A=1", "B"], "Cmd": ["sh"]}
    try:
        result = apply_changes(config, changes)
    except InvalidParameter:
        return
    assert isinstance(result, dict)
    assert config == {"Env": ["A=1", "B"], "Cmd": ["sh"]}


# -- Go durations (values from Go's time.ParseDuration) ----------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("1ns", 1),
        ("1us", 1_000),
        ("1µs", 1_000),
        ("1μs", 1_000),
        ("1.5h", 5_400_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("-1h", -3_600_000_000_000),
        ("5.s", 5_000_000_000),
        (".5s", 500_000_000),
        ("0.000000001s", 1),
        ("1.0000000019s", 1_000_000_001),
        ("2562047h", 9_223_369_200_000_000_000),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        (".", 'time: invalid duration "."'),
        ("-", 'time: invalid duration "-"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1h ", 'time: unknown unit "h " in duration "1h "'),
        ("1e3", 'time: unknown unit "e" in duration "1e3"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_duration(text)
    assert info.value.message == message


@given(st.integers(0, 10**6), st.integers(0, 59), st.integers(0, 999))
def test_parse_duration_sums_units(hours: int, minutes: int, millis: int) -> None:
    expected = ((hours * 60 + minutes) * 60) * 10**9 + millis * 10**6
    assert parse_duration(f"{hours}h{minutes}m{millis}ms") == expected
    assert parse_duration(f"-{hours}h{minutes}m{millis}ms") == -expected
