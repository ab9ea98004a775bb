"""Stage scheduling (which stages a target needs, output in stage order) and RUN --mount
helpers that need no privileges: targets, the mounts' cache-key inputs, the context
materialised for a bind, and which mount points a diff leaves out."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.build.context import open_context
from dockyard.build.dockerfile import parse_dockerfile
from dockyard.build.mounts import Mount, parse_mount
from dockyard.build.run import Cancelled
from dockyard.build.runmounts import (
    MountError,
    _materialise,
    cache_id,
    input_digest,
    mount_target,
    stubs_of,
)
from dockyard.build.stages import (
    StageOutput,
    StageResults,
    needed_stages,
    stage_dependencies,
    stage_ref,
)
from dockyard.engine.commit import mount_stubs
from dockyard.snapshot.changes import Change

DOCKERFILE = """ARG BASE=one
FROM busybox AS one
FROM busybox AS two
RUN --mount=type=bind,from=one,target=/x true
FROM ${BASE} AS three
COPY --from=1 /a /a
FROM busybox AS four
COPY --from=busybox /b /b
RUN --mount=type=cache,target=/c,from=three true
FROM two
COPY --from=four /c /c
"""


def test_dependencies_come_from_from_copy_and_mounts() -> None:
    df = parse_dockerfile(DOCKERFILE)
    deps = stage_dependencies(df, {"BASE": "one"})
    assert deps == [set(), {0}, {0, 1}, {2}, {1, 3}]
    assert needed_stages(deps, 4) == [0, 1, 2, 3, 4]
    assert needed_stages(deps, 1) == [0, 1]
    assert needed_stages(deps, 0) == [0]
    # with another base, stage three no longer reads stage one
    assert stage_dependencies(df, {"BASE": "alpine"})[2] == {1}


def test_stage_refs_name_earlier_stages_only() -> None:
    df = parse_dockerfile("FROM a AS x\nFROM b AS Y\nFROM c\n")
    assert stage_ref(df, "x", 2) == 0
    assert stage_ref(df, "Y", 2) == 1  # names are case-insensitive
    assert stage_ref(df, "y", 1) is None  # itself: an image of that name
    assert stage_ref(df, "1", 2) == 1
    assert stage_ref(df, "2", 2) is None
    assert stage_ref(df, "busybox", 2) is None


def test_later_stages_output_waits_for_the_earlier_ones() -> None:
    sent: list[str] = []
    out = StageOutput([0, 2, 5], lambda item: sent.append(item["stream"]))
    out.write(2, {"stream": "two-a"})
    out.write(0, {"stream": "zero-a"})
    out.write(5, {"stream": "five-a"})
    assert sent == ["zero-a"]
    out.finish(2)  # done early: still held behind stage 0
    assert sent == ["zero-a"]
    out.write(0, {"stream": "zero-b"})
    out.finish(0)
    assert sent == ["zero-a", "zero-b", "two-a", "five-a"]
    out.write(5, {"stream": "five-b"})  # stage 5 is the head now: live
    assert sent[-1] == "five-b"


def test_a_failed_build_flushes_what_was_held() -> None:
    sent: list[str] = []
    out = StageOutput([0, 1], lambda item: sent.append(item["stream"]))
    out.write(1, {"stream": "one"})
    out.write(0, {"stream": "zero"})
    out.flush()
    assert sent == ["zero", "one"]


def test_stage_results_report_the_first_real_failure() -> None:
    cancelled = threading.Event()
    results = StageResults([0, 1, 2], cancelled)
    results.finished(0, None)
    results.wait(0)
    results.finished(1, Cancelled("build cancelled"))
    results.finished(2, ValueError("boom"))
    assert isinstance(results.error, ValueError)
    with pytest.raises(Cancelled):
        results.wait(1)  # a stage that failed cannot be read
    waiting = StageResults([0], cancelled)
    cancelled.set()
    with pytest.raises(Cancelled):
        waiting.wait(0)


def test_mount_targets_and_cache_ids() -> None:
    m = parse_mount("type=cache,target=cache", lambda s: s)
    assert mount_target(m, "/work") == "/work/cache"
    assert cache_id(m) == "cache"
    assert cache_id(parse_mount("type=cache,target=/c,id=x", lambda s: s)) == "x"
    assert mount_target(Mount(target="/a/../b/"), "/") == "/b"
    for bad in (Mount(target=""), Mount(target="/.."), Mount(target="/a:b")):
        with pytest.raises(MountError):
            mount_target(bad, "/")
    assert list(stubs_of(["/a/b/c", "/d"])) == ["/a/b/c", "/a/b", "/a", "/d"]


def _context(files: dict[str, str], links: dict[str, str] | None = None) -> object:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
            tar.addfile(info, io.BytesIO(data.encode()))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    buf.seek(0)
    return open_context(buf)


def test_input_digest_covers_bound_content_and_stage_images() -> None:
    bind = (Mount(type="bind", source="sub", target="/s"),)
    one = _context({"sub/a": "1", "other": "x"})
    same = _context({"sub/a": "1", "other": "changed"})
    changed = _context({"sub/a": "2", "other": "x"})

    def image_of(name: str) -> str:
        return "sha256:" + name

    digest = input_digest(bind, one, image_of)  # type: ignore[arg-type]
    assert digest == input_digest(bind, same, image_of)  # type: ignore[arg-type]
    assert digest != input_digest(bind, changed, image_of)  # type: ignore[arg-type]
    staged = (Mount(type="bind", from_="a", target="/s"),)
    assert input_digest(staged, None, image_of) != input_digest(
        (Mount(type="bind", from_="b", target="/s"),), None, image_of
    )
    assert input_digest((Mount(type="cache", target="/c"),), None, image_of) is None
    with pytest.raises(MountError, match='"/nope": not found'):
        input_digest((Mount(type="bind", source="nope", target="/n"),), one, image_of)  # type: ignore[arg-type]


def test_materialised_context_stays_inside_it(tmp_path: Path) -> None:
    ctx = _context({"sub/a": "1", "sub/d/b": "2"}, {"sub/up": "../../..", "escape": "../../sub"})
    root = _materialise(ctx, "escape", str(tmp_path))  # type: ignore[arg-type]
    assert root == str(tmp_path / "dir")
    assert sorted(os.listdir(root)) == ["a", "d", "up"]
    assert (tmp_path / "dir" / "d" / "b").read_text() == "2"
    assert os.readlink(tmp_path / "dir" / "up") == "../../.."  # a link, read in the container
    assert (tmp_path / "dir" / "a").stat().st_mode & 0o777 == 0o640
    single = tmp_path / "single"
    single.mkdir()
    assert _materialise(ctx, "sub/a", str(single)) == str(single / "file")  # type: ignore[arg-type]


def test_mount_stubs_are_what_the_runtime_made_and_nothing_else() -> None:
    changes = [
        Change("C", "/var"),
        Change("A", "/var/c"),
        Change("A", "/var/c/x"),
        Change("A", "/k"),
        Change("C", "/etc"),
        Change("A", "/etc/new"),
        Change("A", "/m"),
        Change("A", "/m/target"),
        Change("A", "/m/written"),
    ]
    stubs = set(stubs_of(["/var/c/x", "/etc/t", "/m/target"]))
    made, parents = mount_stubs(changes, stubs)
    assert made == {"/var/c", "/var/c/x", "/m/target"}  # /m holds a file the step wrote
    assert parents == {"/var"}  # /etc has another change below it
    assert mount_stubs(changes, set()) == (set(), set())
