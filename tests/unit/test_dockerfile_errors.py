"""Bad Dockerfiles get BuildKit's error texts, naming the line."""

from __future__ import annotations

import pytest

from dockyard.build import DockerfileError, parse_dockerfile
from dockyard.errors import InvalidParameter

P = "dockerfile parse error on line"


def error_of(source: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as e:
        parse_dockerfile(source)
    assert isinstance(e.value, InvalidParameter)  # answered as HTTP 400
    return e.value


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("FROM a\nRUN x\nRUNN y\n", f"{P} 3: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\nfrobnicate y\n", f"{P} 2: unknown instruction: frobnicate"),
        ("FROM a\ncopyy a b\n", f"{P} 2: unknown instruction: copyy (did you mean copy?)"),
        ("RUN x\n", "no build stage in current context"),
        ("ARG a\nENV b=c\n", "no build stage in current context"),
        ("", "file with no instructions"),
        ("# just a comment\n\n", "file with no instructions"),
        ("FROM a\nENV\n", f"{P} 2: ENV requires at least one argument"),
        ("FROM a\nENV =x\n", f"{P} 2: ENV names can not be blank"),
        ("FROM a\nENV x\n", "ENV must have two arguments"),
        (
            "FROM a\nENV a=1 b\n",
            'Syntax error - can\'t find = in "b". Must be of the form: name=value',
        ),
        ("FROM a\nLABEL\n", f"{P} 2: LABEL requires at least one argument"),
        (
            "FROM a\nCOPY x\n",
            f"{P} 2: COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        (
            "FROM a\nADD x\n",
            f"{P} 2: ADD requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        ("FROM a\nCOPY --foo=1 x y\n", f"{P} 2: unknown flag: --foo (did you mean from?)"),
        ("FROM a\nCOPY --bogus x y\n", f"{P} 2: unknown flag: --bogus"),
        (
            "FROM a\nRUN --moutn=type=cache,target=/x y\n",
            f"{P} 2: unknown flag: --moutn (did you mean mount?)",
        ),
        ("FROM a\nCOPY --from x y\n", f"{P} 2: missing a value on flag: --from"),
        (
            "FROM a\nCOPY --link=maybe x y\n",
            f"{P} 2: expecting boolean value for flag --link, not: maybe",
        ),
        ("FROM a\nCOPY --from=a --from=b x y\n", f"{P} 2: duplicate flag specified: --from"),
        ("FROM a\nWORKDIR\n", f"{P} 2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", f"{P} 2: USER requires exactly one argument"),
        ("FROM a\nSTOPSIGNAL\n", f"{P} 2: STOPSIGNAL requires exactly one argument"),
        ("FROM a\nEXPOSE\n", f"{P} 2: EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME\n", f"{P} 2: VOLUME requires at least one argument"),
        ('FROM a\nVOLUME [""]\n', f"{P} 2: VOLUME specified can not be an empty string"),
        ("FROM a\nARG\n", f"{P} 2: ARG requires at least one argument"),
        ("FROM a\nARG =x\n", f"{P} 2: ARG names can not be blank"),
        ("FROM a\nSHELL /bin/sh -c\n", f"{P} 2: SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []\n", f"{P} 2: SHELL requires at least one argument"),
        ("FROM a\nONBUILD\n", f"{P} 2: ONBUILD requires at least one argument"),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            f"{P} 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM a\nONBUILD FROM b\n", f"{P} 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nHEALTHCHECK\n", f"{P} 2: HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", f"{P} 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", f"{P} 2: Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK RUN x\n", f'{P} 2: Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            f'{P} 2: Interval "interval" cannot be less than 1ms',
        ),
        ("FROM a\nHEALTHCHECK --timeout=5 CMD x\n", f'{P} 2: time: missing unit in duration "5"'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", f"{P} 2: --retries cannot be negative (-1)"),
        (
            "FROM a\nHEALTHCHECK --retries=x CMD x\n",
            f'{P} 2: strconv.ParseInt: parsing "x": invalid syntax',
        ),
        ("FROM a b\n", f"{P} 1: FROM requires either one or three arguments"),
        (
            "FROM a AS 1x\n",
            f'{P} 1: invalid name for build stage: "1x", name can\'t start with a number or contain symbols',
        ),
        ("FROM --platform a\n", f"{P} 1: missing a value on flag: --platform"),
        ("FROM a\nMAINTAINER\n", f"{P} 2: MAINTAINER requires exactly one argument"),
        ("FROM a\nCOPY x <<EOF\nEOF\n", f"{P} 2: COPY cannot accept a heredoc as a destination"),
        ("FROM a\nRUN --network=bridge x\n", f'{P} 2: invalid network mode "bridge"'),
        (
            "FROM a\nRUN --mount=type=bind,from=$X,target=/t x\n",
            f"{P} 2: 'from' doesn't support variable expansion, define alias stage instead",
        ),
    ],
)
def test_error_texts(source: str, message: str) -> None:
    assert error_of(source).message == message


def test_parser_errors_come_before_instruction_errors() -> None:
    # BuildKit parses the whole file before it looks at any instruction.
    err = error_of('FROM a\nRUNN x\nCMD ["a", 2]\n')
    assert err.message == "when using JSON array syntax, arrays must be comprised of strings only"
    assert err.line == 3


def test_error_names_all_lines_of_a_continued_instruction() -> None:
    err = error_of("FROM a\nCOPY \\\n  x\n")
    assert (err.line, err.end_line) == (2, 3)


def test_flags_ignored_where_buildkit_ignores_them() -> None:
    df = parse_dockerfile("FROM a\nSTOPSIGNAL --x=1 SIGTERM\nARG --y=2 A\n")
    assert [type(c).__name__ for c in df.stages[0].commands] == ["StopSignal", "Arg"]


def test_overlong_line() -> None:
    err = error_of("FROM a\nRUN " + "x" * 70000 + "\n")
    assert err.message == "dockerfile line greater than max allowed size of 65535"
