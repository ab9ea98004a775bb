""".dockerignore: patternmatcher semantics, checked by hand and against a brute-force reference."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.build.dockerignore import (
    PatternMatcher,
    context_paths,
    go_clean,
    read_patterns,
    trim_build_files,
    walk_context,
)
from dockyard.errors import InvalidParameter


def test_read_patterns() -> None:
    text = (
        "\ufeff# comment\n\n  spaced  \n/abs/path\n!/neg\n! spaced/../x \n a//b/./c\n #not\r\n/\n"
    )
    assert read_patterns(text) == ["spaced", "abs/path", "!neg", "!x", "a/b/c", "#not", "/"]


@pytest.mark.parametrize(
    ("path", "clean"),
    [("", "."), ("a/../..", ".."), ("//a//b/", "/a/b"), ("./a/.", "a"), ("/..", "/")],
)
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.go"], "main.go", True),
        (["*.go"], "cmd/main.go", False),  # * never crosses a /
        (["**/*.go"], "cmd/x/main.go", True),
        (["**/*.go"], "main.go", True),
        (["docs"], "docs/a/b.md", True),  # a matched directory takes its contents along
        (["docs/**"], "docs", False),
        (["docs/**"], "docs/a", True),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["[^a-c]x"], "dx", True),
        (["[^a-c]x"], "ax", False),
        (["a\\*b"], "a*b", True),
        (["a\\*b"], "axb", False),
        (["a.b"], "axb", False),  # regexp characters are literal
        (["(x)+"], "(x)+", True),
        (["*", "!keep"], "keep", False),
        (["*", "!keep", "keep"], "keep", True),  # the last match wins
        (["dir", "!dir/keep"], "dir/keep", False),
        (["dir", "!dir/keep"], "dir/other", True),
        (["/root.txt"], "root.txt", True),
        (["./a/../b"], "b", True),
        (["**"], "anything/at/all", True),
    ],
)
def test_matches(patterns: list[str], path: str, excluded: bool) -> None:
    patterns = read_patterns("\n".join(patterns))
    assert PatternMatcher(patterns).matches_or_parent_matches(path) is excluded


@pytest.mark.parametrize("pattern", ["[", "a[", "[]", "[a-]", "a\\", "[z-a]", "[^]"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"^syntax error in pattern$"):
        PatternMatcher([pattern])


def test_lone_bang_is_illegal() -> None:
    with pytest.raises(ValueError) as e:
        PatternMatcher(["!"])
    assert str(e.value) == 'illegal exclusion pattern: "!"'


def test_deprecated_matches_checks_one_parent_only() -> None:
    # what the CLI uses to decide whether to re-include the Dockerfile
    pm = PatternMatcher(["a"])
    assert pm.matches("a/b") and pm.matches("a/b/c")
    pm = PatternMatcher(["*/b"])
    assert pm.matches("x/b/c") and not pm.matches_or_parent_matches("x/c/d")


def test_trim_build_files() -> None:
    assert trim_build_files(["*"]) == ["*", "!.dockerignore", "!Dockerfile"]
    assert trim_build_files(["*.md"]) == ["*.md"]
    assert trim_build_files(["sub"], "sub/Dockerfile") == ["sub", "!sub/Dockerfile"]
    assert trim_build_files(["*"], dockerfile_from_stdin=True) == ["*", "!.dockerignore"]


def make_tree(root: Path, files: list[str], ignore: str | None = None) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f)
    if ignore is not None:
        (root / ".dockerignore").write_text(ignore)


def test_context_paths(tmp_path: Path) -> None:
    files = ["Dockerfile", "a.txt", "b.md", "node_modules/x/y.js", "src/main.go", "src/gen/z.go"]
    files += ["logs/1.log", "logs/keep/me", "logs/keep/not"]
    ignore = "*\n!src\nsrc/gen\n!logs/keep/me\nnode_modules\n"
    make_tree(tmp_path, files, ignore)
    got = list(context_paths(tmp_path))
    # "logs" is excluded but walked, since an exception starts inside it; it is not sent itself
    assert got == [".dockerignore", "Dockerfile", "logs/keep/me", "src", "src/main.go"]


def test_exception_with_leading_globstar_does_not_rescue_excluded_dirs(tmp_path: Path) -> None:
    make_tree(tmp_path, ["d/keep", "d/drop", "keep"], "d\n!**/keep\n")
    assert list(context_paths(tmp_path)) == [".dockerignore", "keep"]


def test_no_dockerignore_sends_everything(tmp_path: Path) -> None:
    make_tree(tmp_path, ["b/c", "a"])
    (tmp_path / "link").symlink_to("b")
    assert list(context_paths(tmp_path)) == ["a", "b", "b/c", "link"]


def test_walk_with_bad_pattern(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        list(walk_context(tmp_path, ["["]))


# -- a brute-force reference: segments, `**` as any number of whole segments -------------------

SEGMENTS = ["a", "b", "ab", "ba"]
PATTERN_SEGMENTS = ["a", "b", "*", "?", "a*", "*b", "?b", "**"]


def seg_match(pat: list[str], path: list[str]) -> bool:
    if not pat:
        return not path
    if pat[0] == "**":
        if len(pat) == 1:  # a trailing "**" needs something below it ("a/**" is not "a")
            return len(path) >= 1
        return any(seg_match(pat[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pat[0]) and seg_match(pat[1:], path[1:])


def reference_excluded(patterns: list[tuple[bool, str]], path: str) -> bool:
    parts = path.split("/")
    excluded = False
    for exclusion, pat in patterns:  # the last pattern matching the path or a parent decides
        segs = pat.split("/")
        if any(seg_match(segs, parts[:i]) for i in range(1, len(parts) + 1)):
            excluded = not exclusion
    return excluded


paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map("/".join)
patterns = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(st.sampled_from(PATTERN_SEGMENTS), min_size=1, max_size=3).map("/".join),
    ),
    min_size=1,
    max_size=4,
)


@given(patterns, st.lists(paths, min_size=1, max_size=10))
def test_matcher_agrees_with_reference(pats: list[tuple[bool, str]], candidates: list[str]) -> None:
    pm = PatternMatcher([("!" if ex else "") + p for ex, p in pats])
    for path in candidates:
        assert pm.matches_or_parent_matches(path) == reference_excluded(pats, path), path


@given(
    patterns.filter(lambda ps: not any(ex for ex, _ in ps)), st.lists(paths, min_size=1, max_size=6)
)
def test_walk_agrees_with_matcher_without_exceptions(
    tmp_path_factory: pytest.TempPathFactory, pats: list[tuple[bool, str]], files: list[str]
) -> None:
    root = tmp_path_factory.mktemp("ctx")
    made = []
    for f in files:
        if any(m.startswith(f + "/") or f.startswith(m + "/") for m in made):
            continue  # a name cannot be both a file and a directory
        make_tree(root, [f])
        made.append(f)
    pm = PatternMatcher([p for _, p in pats])
    walked = set(walk_context(root, [p for _, p in pats]))
    every = {str(p.relative_to(root)) for p in root.rglob("*")}
    assert walked == {p for p in every if not pm.matches_or_parent_matches(p)}
