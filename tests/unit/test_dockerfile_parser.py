"""Dockerfile parsing: a corpus of Dockerfiles with their expected parse, and the edge cases."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build import DockerfileError, parse_dockerfile
from dockyard.build.instructions import Cmd, Copy, Env, From, Run
from dockyard.build.parser import parse_heredoc, parse_nodes

CORPUS = Path(__file__).parent / "dockerfiles"


def dump(source: str) -> dict[str, Any]:
    df = parse_dockerfile(source)

    def one(instr: object) -> dict[str, Any]:
        return {"type": type(instr).__name__, **dataclasses.asdict(instr)}  # type: ignore[call-overload]

    return {
        "directives": df.directives,
        "escape": df.escape,
        "warnings": df.warnings,
        "meta_args": [one(a) for a in df.meta_args],
        "stages": [[one(s.from_), *(one(c) for c in s.commands)] for s in df.stages],
    }


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.Dockerfile")), ids=lambda p: p.stem)
def test_corpus(path: Path) -> None:
    expected_path = path.with_suffix(".expected.json")
    got = dump(path.read_text())
    if os.environ.get("DOCKYARD_REGEN_GOLDEN"):  # after reviewing a parser change by hand
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert json.loads(json.dumps(got)) == json.loads(expected_path.read_text())


def only(source: str) -> object:
    """The single instruction after a FROM line."""
    df = parse_dockerfile("FROM scratch\n" + source)
    (instr,) = df.stages[0].commands
    return instr


def test_line_numbers_and_original_text() -> None:
    df = parse_dockerfile("\n# c\nFROM a\n\nRUN x \\\n  y\nCMD z\n")
    from_, run, cmd = df.stages[0].from_, *df.stages[0].commands
    assert (from_.start_line, from_.end_line) == (3, 3)
    assert (run.start_line, run.end_line, run.original) == (5, 6, "RUN x   y")
    assert (cmd.start_line, cmd.original) == (7, "CMD z")


def test_keywords_are_case_insensitive() -> None:
    df = parse_dockerfile("from a AS B\nrun echo\nCoPy x y\n")
    assert df.stages[0].name == "b"
    assert [type(c) for c in df.stages[0].commands] == [Run, Copy]


def test_directives_only_at_the_top() -> None:
    assert parse_nodes("# escape=`\nFROM a\n").escape == "`"
    assert parse_nodes("# ESCAPE = ` \nFROM a\n").escape == "`"
    # after a blank line, another comment or an instruction a directive is a plain comment
    assert parse_nodes("\n# escape=`\nFROM a\n").escape == "\\"
    assert parse_nodes("# hello\n# escape=`\nFROM a\n").escape == "\\"
    assert parse_nodes("# unknown=1\n# escape=`\nFROM a\n").escape == "\\"
    res = parse_nodes("# syntax=docker/dockerfile:1\n# check=skip=all\nFROM a\n")
    assert res.directives == {"syntax": "docker/dockerfile:1", "check": "skip=all"}


def test_directive_errors() -> None:
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile("# escape=x\nFROM a\n")
    assert e.value.message == "invalid escape token 'x' does not match ` or \\"
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile("# escape=`\n# escape=\\\nFROM a\n")
    assert e.value.message == "only one escape parser directive can be used"


def test_bom_and_crlf() -> None:
    df = parse_dockerfile("\ufeffFROM a\r\nRUN echo \\\r\n  b\r\n")
    assert df.stages[0].commands[0].cmd == ("echo   b",)


def test_backslash_escape_does_not_continue_with_backtick_escape() -> None:
    df = parse_dockerfile("# escape=`\nFROM a\nRUN echo \\\nCMD x `\n  y\n")
    run, cmd = df.stages[0].commands
    assert run.cmd == ("echo \\",)
    assert cmd.cmd == ("x   y",)


def test_flags_and_double_dash() -> None:
    copy = only("COPY --chown='a b' --from=\"x\" -- --weird /dst\n")
    assert isinstance(copy, Copy)
    assert (copy.chown, copy.from_stage, copy.sources, copy.dest) == (
        "a b",
        "x",
        ("--weird",),
        "/dst",
    )


@pytest.mark.parametrize(
    ("rest", "cmd", "shell"),
    [
        ('["a", "b"]', ("a", "b"), False),
        ('  [ "a" ]  ', ("a",), False),
        ("['a']", ("['a']",), True),
        ('["a",]', ('["a",]',), True),
        ('["a"] trailing', ('["a"] trailing',), True),
        ('"a"', ('"a"',), True),
        ("[NaN]", ("[NaN]",), True),
        ("[]", (), False),
    ],
)
def test_json_form_detection(rest: str, cmd: tuple[str, ...], shell: bool) -> None:
    instr = only(f"CMD {rest}\n")
    assert isinstance(instr, Cmd)
    assert (instr.cmd, instr.prepend_shell) == (cmd, shell)


def test_json_array_of_non_strings_is_an_error() -> None:
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile('FROM a\nRUN ok\nCMD ["a", 1]\n')
    assert (
        e.value.message == "when using JSON array syntax, arrays must be comprised of strings only"
    )
    assert e.value.line == 3


def test_env_forms() -> None:
    env = only("ENV a b c\n")
    assert isinstance(env, Env)
    assert [(p.key, p.value, p.no_delim) for p in env.pairs] == [("a", "b c", True)]
    env = only('ENV a=1 b="x y" c=\\"\n')
    assert [(p.key, p.value) for p in env.pairs] == [("a", "1"), ("b", '"x y"'), ("c", '\\"')]


def test_heredoc_words() -> None:
    assert parse_heredoc("<<EOF") == parse_heredoc("<<EOF")
    doc = parse_heredoc('<<-"E O"')
    assert doc is not None and (doc.name, doc.expand, doc.chomp) == ("E O", False, True)
    doc = parse_heredoc("<<E'O'F")
    assert doc is not None and (doc.name, doc.expand) == ("EOF", False)
    doc = parse_heredoc("12<<EOF")
    assert doc is not None and (doc.fd, doc.expand) == (12, True)
    assert parse_heredoc("<<") is None
    assert parse_heredoc("<<<EOF") is None
    assert parse_heredoc("a<<EOF") is None


def test_heredoc_terminator_must_match_whole_line() -> None:
    df = parse_dockerfile("FROM a\nRUN <<EOF\n EOF\nEOFX\nEOF\nCMD x\n")
    run, cmd = df.stages[0].commands
    assert run.files[0].data == " EOF\nEOFX\n"
    assert (run.end_line, cmd.start_line) == (5, 6)


def test_heredocs_not_in_other_instructions() -> None:
    df = parse_dockerfile("FROM a\nCMD cat <<EOF\nRUN x\n")
    assert [type(c) for c in df.stages[0].commands] == [Cmd, Run]


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile("FROM a\nRUN <<EOF\necho\n")
    assert (e.value.message, e.value.line, e.value.end_line) == ("unterminated heredoc", 2, 3)


def test_from_forms() -> None:
    df = parse_dockerfile("FROM --platform=linux/arm64 img AS One\n")
    from_ = df.stages[0].from_
    assert isinstance(from_, From)
    assert (from_.base_name, from_.stage_name, from_.platform) == ("img", "one", "linux/arm64")
    assert df.stage_index("ONE") == 0 and df.stage_index("two") is None


def test_run_mount_and_network() -> None:
    run = only(
        "RUN --mount=type=cache,target=/c,id=x --mount=type=bind,from=b,source=/s,target=/t --network=host make\n"
    )
    assert isinstance(run, Run)
    assert run.mount_specs == ("type=cache,target=/c,id=x", "type=bind,from=b,source=/s,target=/t")
    assert (run.network, run.cmd) == ("host", ("make",))


_arg_text = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=["Cs", "Zl", "Zp"], exclude_characters="\n\r\x85"
    ),
    max_size=12,
)


@given(st.lists(_arg_text, max_size=4))
def test_json_string_array_is_exec_form(args: list[str]) -> None:
    instr = only("CMD " + json.dumps(args) + "\n")
    assert isinstance(instr, Cmd)
    assert (instr.cmd, instr.prepend_shell) == (tuple(args), False)


# A leading `--word` is a flag of the instruction (BuildKit's extractBuilderFlags), not text.
@given(_arg_text.map(str.strip).filter(lambda s: s and not s.startswith(("[", "#", "\\", "--"))))
def test_anything_else_is_shell_form(text: str) -> None:
    instr = only(f"CMD {text}\n")
    assert isinstance(instr, Cmd)
    assert instr.prepend_shell and instr.cmd == (text,)


def test_leading_double_dash_words_are_flags():
    """BuildKit reads leading `--x` words as flags of any instruction; `--` ends them."""
    with pytest.raises(DockerfileError, match="line 2: unknown flag: --0"):
        only("CMD --0\n")
    instr = only("CMD -- echo hi\n")
    assert isinstance(instr, Cmd) and instr.cmd == ("echo hi",)
