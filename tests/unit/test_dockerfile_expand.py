"""Word processing (BuildKit's shell lexer) and variable substitution with ARG/ENV scoping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build import DockerfileError, StageScope, expand_stage, global_args, parse_dockerfile
from dockyard.build.lexer import LexError, ShellLex

ENV = {"A": "a", "EMPTY": "", "SP": "x y", "PATH": "/usr/local/bin:/usr/bin"}


@pytest.mark.parametrize(
    ("word", "result"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("pre$A.post", "prea.post"),
        ("$UNSET", ""),
        ("${UNSET:-x}", "x"),
        ("${EMPTY:-x}", "x"),
        ("${EMPTY-x}", ""),
        ("${UNSET-x}", "x"),
        ("${A:+x}", "x"),
        ("${EMPTY:+x}", ""),
        ("${EMPTY+x}", "x"),
        ("${UNSET+x}", ""),
        ("${A:-$SP}", "a"),
        ("${UNSET:-${A}b}", "ab"),
        ("${A:?msg}", "a"),
        ("'$A'", "$A"),
        ('"$A"', "a"),
        ('"\\$A"', "$A"),
        ("\\$A", "$A"),
        ('"a\\nb"', "a\\nb"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1x", "x"),
        ("${PATH#*:}", "/usr/bin"),
        ("${PATH##*/}", "bin"),
        ("${PATH%:*}", "/usr/local/bin"),
        ("${PATH%%/*}", ""),
        ("${PATH/bin/sbin}", "/usr/local/sbin:/usr/bin"),
        ("${PATH//bin/sbin}", "/usr/local/sbin:/usr/sbin"),
        ("end\\", "end"),
    ],
)
def test_process_word(word: str, result: str) -> None:
    assert ShellLex().process_word(word, ENV) == result


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${UNSET:?must be set}", 'failed to process "${UNSET:?must be set}": UNSET: must be set'),
        ("${UNSET?}", 'failed to process "${UNSET?}": UNSET: is not allowed to be unset'),
        ("${EMPTY:?}", 'failed to process "${EMPTY:?}": EMPTY: is not allowed to be empty'),
        ("${A", 'failed to process "${A": unsupported modifier (\ufffd) in substitution'),
        ("${}", 'failed to process "${}": syntax error: bad substitution'),
        ("${", "failed to process \"${\": syntax error: missing '}'"),
        ("${A:-x", "failed to process \"${A:-x\": syntax error: missing '}'"),
        ("${A*}", 'failed to process "${A*}": unsupported modifier (*) in substitution'),
        ("${A:#x}", 'failed to process "${A:#x}": unsupported modifier (:#) in substitution'),
        (
            "'open",
            'failed to process "\'open": unexpected end of statement while looking for matching single-quote',
        ),
        (
            '"open',
            'failed to process "\\"open": unexpected end of statement while looking for matching double-quote',
        ),
    ],
)
def test_process_word_errors(word: str, message: str) -> None:
    with pytest.raises(LexError) as e:
        ShellLex().process_word(word, ENV)
    assert str(e.value) == message


def test_process_words_splits_expansions_but_not_quotes() -> None:
    lex = ShellLex()
    assert lex.process_words("$SP 'q u' \"$SP\" a\\ b", ENV) == ["x", "y", "q u", "x y", "a b"]
    assert lex.process_words('"" x', ENV) == ["x"]


def test_backtick_escape() -> None:
    lex = ShellLex("`")
    assert lex.process_word("C:\\dir `$A", ENV) == "C:\\dir $A"
    assert lex.process_word('"`"x"', ENV) == '"x'


def test_raw_modes_keep_quotes_escapes_and_unset() -> None:
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert lex.process_word("'a' \"b\" \\c $U ${U:-x}", {}) == "'a' \"b\" \\c $U ${U:-x}"


# Text that needs no expansion: everything special escaped, so processing gives it back.
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


def _escape(text: str) -> str:
    return "".join("\\" + ch for ch in text)


@given(_text)
def test_escaped_text_round_trips(text: str) -> None:
    assert ShellLex().process_word(_escape(text), {}) == text


@given(_text)
def test_single_quoted_text_is_literal(text: str) -> None:
    if "'" in text:
        return
    assert ShellLex().process_word(f"'{text}'", {"A": "x"}) == text


@given(
    st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), _text, max_size=4)
)
def test_braced_references_expand_to_values(env: dict[str, str]) -> None:
    for name, value in env.items():
        assert ShellLex().process_word("${" + name + "}", env) == value
        assert ShellLex().process_word("${" + name + ":-fallback}", env) == (value or "fallback")


def steps(source: str, **kw: object) -> list:
    df = parse_dockerfile(source)
    g = global_args(df.meta_args, kw.get("build_args", {}), df.escape)  # type: ignore[arg-type]
    return expand_stage(df.stages[-1], globals_=g, escape=df.escape, **kw)  # type: ignore[arg-type]


def test_meta_args_only_in_from() -> None:
    out = steps("ARG V=1\nARG IMG=base:$V\nFROM $IMG\nRUN echo $V\nLABEL v=$V\n")
    assert out[0].base_name == "base:1"
    assert out[1].cmd == ("echo $V",)  # RUN is never expanded by the builder
    assert out[2].pairs[0].value == ""  # not redeclared: not visible


def test_redeclared_meta_arg_takes_global_value() -> None:
    out = steps("ARG V=1\nFROM a\nARG V\nLABEL v=$V\n")
    assert out[2].pairs[0].value == "1"
    out = steps("ARG V=1\nFROM a\nARG V\nLABEL v=$V\n", build_args={"V": "cli"})
    assert out[2].pairs[0].value == "cli"


def test_build_arg_overrides_default_and_arg_scope_starts_at_declaration() -> None:
    out = steps("FROM a\nLABEL before=$X\nARG X=def\nLABEL after=$X\n", build_args={"X": "cli"})
    assert (out[1].pairs[0].value, out[3].pairs[0].value) == ("", "cli")
    out = steps("FROM a\nARG X=def\nLABEL after=$X\n", build_args={"Y": "cli"})
    assert out[2].pairs[0].value == "def"


def test_env_overrides_arg_whatever_the_order() -> None:
    out = steps("FROM a\nENV X=env\nARG X=arg\nWORKDIR /$X\n")
    assert out[3].path == "/env"
    out = steps("FROM a\nARG X=arg\nENV X=env\nWORKDIR /$X\n")
    assert out[3].path == "/env"


def test_base_image_env_is_visible_and_wins() -> None:
    out = steps("FROM a\nARG HOME=/arg\nUSER $HOME:$PATH\n", base_env=["HOME=/root", "PATH=/bin"])
    assert out[2].user == "/root:/bin"


def test_env_line_sees_values_from_before_the_line() -> None:
    out = steps("FROM a\nENV A=1\nENV A=2 B=$A\n")
    assert [(p.key, p.value) for p in out[2].pairs] == [("A", "2"), ("B", "1")]


def test_expanded_instructions() -> None:
    src = (
        "FROM a\nENV P=80 D=/data U=app S=SIGTERM F=file\n"
        "EXPOSE $P ${P}/udp\nVOLUME $D\nUSER $U\nWORKDIR $D/w\nSTOPSIGNAL $S\n"
        "COPY --chown=$U --chmod=755 $F* $D/\nADD --checksum=$S $F $D\n"
        'CMD echo $P\nENTRYPOINT ["$P"]\nHEALTHCHECK CMD $P\nONBUILD RUN $P\n'
        "RUN --mount=type=cache,target=$D,id=$U x\n"
    )
    out = steps(src)
    assert out[2].ports == ("80", "80/udp")
    assert out[3].paths == ("/data",)
    assert (out[4].user, out[5].path, out[6].signal) == ("app", "/data/w", "SIGTERM")
    assert (out[7].chown, out[7].chmod, out[7].sources, out[7].dest) == (
        "app",
        "755",
        ("file*",),
        "/data/",
    )
    assert (out[8].checksum, out[8].sources) == ("SIGTERM", ("file",))
    assert out[9].cmd == ("echo $P",) and out[10].cmd == ("$P",)
    assert out[11].health.test == ("CMD-SHELL", "$P") and out[12].expression == "RUN $P"
    (mount,) = out[13].mounts
    assert (mount.type, mount.target, mount.cache_id, mount.readonly) == (
        "cache",
        "/data",
        "app",
        False,
    )


def test_heredoc_bodies_expand_unless_quoted() -> None:
    out = steps("FROM a\nENV N=x\nCOPY <<A <<'B' /d/\n'$N' \"$N\"\nA\n$N\nB\n")
    a, b = out[2].contents
    assert (a.data, b.data) == ("'x' \"x\"\n", "$N\n")


def test_proxy_args_need_no_declaration() -> None:
    scope = StageScope(build_args={"http_proxy": "http://p", "OTHER": "o"})
    assert scope.word("$http_proxy$OTHER") == "http://p"
    assert "http_proxy=http://p" in scope.run_env()
    assert scope.unused_build_args() == ["OTHER"]


def test_run_env_has_args_not_shadowed_by_env() -> None:
    scope = StageScope(base_env=["PATH=/bin"], build_args={"V": "1"})
    for instr in parse_dockerfile("FROM a\nARG V\nARG PATH=/x\nARG W=2\n").stages[0].commands:
        scope.expand(instr)
    assert scope.run_env() == ["PATH=/bin", "V=1", "W=2"]


def test_expansion_errors_name_the_line() -> None:
    with pytest.raises(DockerfileError) as e:
        steps("FROM a\n\nWORKDIR ${NOPE:?is required}\n")
    assert e.value.message == 'failed to process "${NOPE:?is required}": NOPE: is required'
    assert e.value.line == 3
    with pytest.raises(DockerfileError) as e:
        steps("FROM a\nCOPY --from=$X a b\n")
    assert e.value.message.startswith("variable expansion is not supported for --from")
    with pytest.raises(DockerfileError) as e:
        steps("FROM a\nRUN --mount=type=foo x\n")
    assert e.value.message == 'unsupported mount type "foo"'


def test_from_platform_and_backtick_files() -> None:
    out = steps("# escape=`\nARG P=linux/amd64\nFROM --platform=$P img:`$x\n")
    assert (out[0].platform, out[0].base_name) == ("linux/amd64", "img:$x")
