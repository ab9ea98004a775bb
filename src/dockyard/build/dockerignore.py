""".dockerignore: moby/patternmatcher's semantics, and which context files the CLI sends.

Not gitignore (pathspec and friends differ): a pattern is Go's filepath.Match syntax (`*` and
`?` never cross `/`, `[a-z]` classes, `\\` escapes) plus `**` for any number of directories;
patterns are cleaned like filepath.Clean and a leading `/` is dropped (ignorefile.ReadAll);
`!pattern` re-includes; the last pattern that matches decides; a pattern matching a directory
excludes everything below it. The CLI walks the context as moby/go-archive's TarWithOptions
does: an excluded directory is not descended into unless an exception pattern starts with that
directory's path, and the Dockerfile and .dockerignore are always sent (TrimBuildFilesFromExcludes
in docker/cli's build/context.go).

Where patternmatcher hands a pattern's text to Go's regexp (so `\\d` in a pattern would be a
digit class there, and `^` an anchor), we take the character literally, as filepath.Match does.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter

__all__ = [
    "Pattern",
    "PatternMatcher",
    "context_paths",
    "go_clean",
    "read_patterns",
    "trim_build_files",
    "walk_context",
]

BAD_PATTERN = "syntax error in pattern"  # Go's filepath.ErrBadPattern


def go_clean(path: str) -> str:
    """filepath.Clean: like posixpath.normpath, but "" is "." and "//x" is "/x"."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def read_patterns(text: str | bytes) -> list[str]:
    """ignorefile.ReadAll: comments and blank lines dropped, patterns cleaned, `/` stripped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    out: list[str] = []
    for i, line in enumerate(text.split("\n")):
        if i == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):  # only a "#" in the first column starts a comment
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _check_syntax(pattern: str) -> None:
    """Raise ValueError when filepath.Match would answer ErrBadPattern for this pattern."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "\\":
            if i == n:
                raise ValueError(BAD_PATTERN)
            i += 1
        elif ch == "[":
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                i = _class_char(pattern, i)
                if pattern[i] == "-":
                    i = _class_char(pattern, i + 1)
                ranges += 1


def _class_char(pattern: str, i: int) -> int:
    """getEsc: one (possibly escaped) class character; something must follow it."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise ValueError(BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise ValueError(BAD_PATTERN)
    i += 1
    if i >= n:
        raise ValueError(BAD_PATTERN)
    return i


@dataclass
class Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" pattern: re-includes what it matches
    kind: str = "exact"  # exact, prefix ("a/**"), suffix ("**/a") or regexp
    regex: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        self.dirs = self.text.split("/")
        self._compile()

    def __str__(self) -> str:
        return self.text

    def _compile(self) -> None:
        out = ["^"]
        kind = "exact"
        text, i, n = self.text, 0, len(self.text)
        in_class = False
        first = True  # the "**" that starts a pattern makes it a suffix match
        while i < n:
            ch = text[i]
            i += 1
            at_start, first = first, False
            if in_class:
                if ch == "]":
                    in_class = False
                    out.append("]")
                elif ch == "\\" and i < n:
                    out.append(re.escape(text[i]))
                    i += 1
                elif ch == "-" or (ch == "^" and out[-1] == "["):
                    out.append(ch)
                else:
                    out.append(re.escape(ch))
            elif ch == "*" and text[i : i + 1] == "*":
                i += 1
                if text[i : i + 1] == "/":  # "**/" is "**"
                    i += 1
                if i == n:  # "**" at the end matches everything below
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(?:.*/)?")  # any number of directories, even none
                    kind = "regexp"
                if at_start:
                    kind = "suffix"
            elif ch == "*":
                out.append("[^/]*")
                kind = "regexp"
            elif ch == "?":
                out.append("[^/]")
                kind = "regexp"
            elif ch == "\\" and i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regexp"
            elif ch == "[":
                in_class = True
                out.append("[")
                kind = "regexp"
            else:
                out.append(re.escape(ch))
        self.kind = kind
        if kind == "regexp":
            try:
                self.regex = re.compile("".join(out) + "$", re.DOTALL)
            except re.error:
                raise ValueError(BAD_PATTERN) from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]  # "**/foo" matches "foo"
        assert self.regex is not None
        return self.regex.match(path) is not None


class PatternMatcher:
    """Paths against .dockerignore patterns; ValueError for a bad pattern."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                p = p[1:]
            _check_syntax(p)
            self.patterns.append(Pattern(p, exclusion))

    @property
    def exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """patternmatcher.Matches (what the CLI uses to keep the Dockerfile): besides the
        path itself, each pattern is tried on the one parent prefix as deep as the pattern."""
        matched = False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue  # only an exception can undo a match, only a pattern can make one
            hit = pat.match(path)
            if not hit and parent != "." and len(pat.dirs) <= len(parent_dirs):
                hit = pat.match("/".join(parent_dirs[: len(pat.dirs)]))
            if hit:
                matched = not pat.exclusion
        return matched

    def matches_or_parent_matches(self, path: str) -> bool:
        return self.matches_using_parent_results(path, None)[0]

    def matches_using_parent_results(
        self, path: str, parent: list[bool] | None
    ) -> tuple[bool, list[bool]]:
        """Whether `path` is excluded, given which patterns matched its parent directory
        (None: unknown, then every parent prefix is tried). Returns the per-pattern results
        to pass for the path's children."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            hit = bool(parent and parent[i])
            if not hit:
                if pat.exclusion != matched:
                    continue
                hit = pat.match(path)
                if not hit and parent is None:
                    hit = any(pat.match(p) for p in _parent_prefixes(path))
            info[i] = hit
            if hit:
                matched = not pat.exclusion
        return matched, info


def _parent_prefixes(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    if not parent or parent == ".":
        return
    parts = parent.split("/")
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def _file_matches(path: str, patterns: list[str]) -> bool:
    """patternmatcher.Matches(file, patterns): the context root itself never matches."""
    path = go_clean(path)
    return path != "." and PatternMatcher(patterns).matches(path)


def trim_build_files(
    excludes: list[str], dockerfile: str = "Dockerfile", *, dockerfile_from_stdin: bool = False
) -> list[str]:
    """Re-include .dockerignore and the Dockerfile when excluded: the daemon needs them."""
    out = list(excludes)
    if _file_matches(".dockerignore", out):
        out.append("!.dockerignore")
    dockerfile = dockerfile.replace(os.sep, "/")
    if _file_matches(dockerfile, out) and not dockerfile_from_stdin:
        out.append("!" + dockerfile)
    return out


def walk_context(root: str | Path, excludes: list[str]) -> Iterator[str]:
    """Relative paths (with "/") under root that go into the context, parents first, in
    lexical order; directories are yielded too. Symlinks are entries, never followed."""
    try:
        pm = PatternMatcher(excludes)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None
    yield from _walk(str(root), "", pm, None)


def _walk(top: str, rel: str, pm: PatternMatcher, parent: list[bool] | None) -> Iterator[str]:
    with os.scandir(os.path.join(top, rel) if rel else top) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        skip, info = (False, [])
        if pm.patterns:
            skip, info = pm.matches_using_parent_results(path, parent)
        if skip:
            if is_dir and _has_exception_inside(pm, path):
                yield from _walk(top, path, pm, info)
            continue
        yield path
        if is_dir:
            yield from _walk(top, path, pm, info if pm.patterns else None)


def _has_exception_inside(pm: PatternMatcher, directory: str) -> bool:
    """An excluded directory is still walked when an exception pattern starts inside it."""
    prefix = directory + "/"
    return any(p.exclusion and (p.text + "/").startswith(prefix) for p in pm.patterns)


def context_paths(
    root: str | Path, dockerfile: str = "Dockerfile", *, dockerfile_from_stdin: bool = False
) -> Iterator[str]:
    """What `docker build <root>` sends: .dockerignore applied, build files kept."""
    ignore = Path(root, ".dockerignore")
    try:
        excludes = read_patterns(ignore.read_bytes())
    except FileNotFoundError:
        excludes = []
    excludes = trim_build_files(excludes, dockerfile, dockerfile_from_stdin=dockerfile_from_stdin)
    yield from walk_context(root, excludes)
