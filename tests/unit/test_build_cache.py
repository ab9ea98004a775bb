"""The build cache key (pure): what it depends on, and what it must not depend on."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from dockyard.build import parse_dockerfile
from dockyard.build.cache import SourceDigest, describe, step_key
from dockyard.build.expand import StageScope

ids = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
entries = st.lists(
    st.tuples(names, st.sampled_from(["0", "2", "5"]), st.integers(0, 0o7777), st.binary()),
    max_size=5,
)


def digest(items: list[tuple[str, str, int, bytes]]) -> str:
    d = SourceDigest()
    for name, kind, mode, data in items:
        d.entry(name, kind, mode)
        if kind == "0":
            d.data(data)
    return d.hexdigest()


def instruction(line: str, **build_args: str):  # the first command of a one-stage Dockerfile
    df = parse_dockerfile(f"FROM busybox\n{line}\n")
    return StageScope(build_args=build_args).expand(df.stages[0].commands[0])


@given(ids, st.text(), st.one_of(st.none(), st.text()))
def test_key_is_deterministic_and_well_formed(parent: str, text: str, sources: str | None) -> None:
    key = step_key(parent, text, sources)
    assert key == step_key(parent, text, sources)
    assert key.startswith("sha256:") and len(key) == 71


@given(ids, ids, st.text(), st.text())
def test_key_depends_on_parent_and_step(p1: str, p2: str, t1: str, t2: str) -> None:
    if p1 != p2:
        assert step_key(p1, t1) != step_key(p2, t1)
    if t1 != t2:
        assert step_key(p1, t1) != step_key(p1, t2)


@given(ids, st.text(), st.text(), st.text())
def test_fields_cannot_be_shifted_between_parts(parent: str, a: str, b: str, c: str) -> None:
    # "ab" + "c" must not collide with "a" + "bc": the parts are encoded, not concatenated
    if (a + b, c) != (a, b + c):
        assert step_key(parent, a + b, c) != step_key(parent, a, b + c)


@given(entries)
def test_source_digest_is_a_function_of_names_modes_and_bytes(items) -> None:
    assert digest(items) == digest(list(items))
    for i, (name, kind, mode, data) in enumerate(items):
        changed = list(items)
        changed[i] = (name + "x", kind, mode, data)
        assert digest(changed) != digest(items)
        changed[i] = (name, kind, mode ^ 0o1, data)
        assert digest(changed) != digest(items)
        if kind == "0":
            changed[i] = (name, kind, mode, data + b"\0")
            assert digest(changed) != digest(items)


@given(st.binary(), st.binary())
def test_source_digest_frames_the_data(a: bytes, b: bytes) -> None:
    one = SourceDigest()
    one.entry("f", "0", 0o644)
    one.data(a + b)
    two = SourceDigest()
    two.entry("f", "0", 0o644)
    two.data(a)
    two.data(b)
    if a and b:
        assert one.hexdigest() != two.hexdigest()  # chunking is part of what was fed


def test_describe_ignores_lines_and_text_but_not_meaning() -> None:
    run = instruction("RUN echo hi")
    moved = dataclasses.replace(run, start_line=40, end_line=41, original="RUN  echo hi")
    assert describe(run) == describe(moved)
    assert describe(run) != describe(instruction("RUN echo ho"))
    assert describe(instruction('RUN ["echo", "hi"]')) != describe(run)


def test_describe_sees_expanded_values() -> None:
    # the same text with different build args is a different step
    a = instruction("ARG V=1", V="2")
    b = instruction("ARG V=1", V="3")
    assert describe(a) != describe(b)
    copy_a = instruction("COPY --chown=1:1 a /x")
    copy_b = instruction("COPY --chown=2:2 a /x")
    assert describe(copy_a) != describe(copy_b)


def test_run_key_includes_its_build_args_environment() -> None:
    run = instruction("RUN echo $V")
    parent = "sha256:" + "0" * 64
    assert step_key(parent, describe(run, ["|1", "V=1"])) != step_key(
        parent, describe(run, ["|1", "V=2"])
    )
