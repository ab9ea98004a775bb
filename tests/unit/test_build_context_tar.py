"""The build context read from a (hostile) tar, and COPY planning over it (no daemon)."""

from __future__ import annotations

import io
import tarfile

import pytest
import zstandard

from dockyard.build.context import open_context
from dockyard.build.copy import plan_copy
from dockyard.errors import DockyardError, InvalidParameter


def tar_bytes(members: list[tuple[str, str, bytes | str]], compress: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}" if compress else "w") as tar:  # type: ignore[call-overload]
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                raw = data.encode() if isinstance(data, str) else data
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
    return buf.getvalue()


def ctx(members, compress: str = ""):
    return open_context(io.BytesIO(tar_bytes(members, compress)))


@pytest.mark.parametrize("compress", ["", "gz", "bz2", "xz", "zstd"])
def test_every_compression_docker_accepts(compress: str) -> None:
    members = [("Dockerfile", "file", "FROM scratch\n"), ("a/b", "file", "x")]
    if compress == "zstd":
        body = zstandard.ZstdCompressor().compress(tar_bytes(members))
    else:
        body = tar_bytes(members, compress)
    context = open_context(io.BytesIO(body))
    entry = context.lookup("a/b")
    assert entry is not None and context.read(entry) == b"x"
    assert context.lookup("a") is not None  # implied parent
    assert context.read(context.lookup("./Dockerfile")) == b"FROM scratch\n"  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../x", "a/../../x"])
def test_names_that_climb_out_are_refused(name: str) -> None:
    with pytest.raises(DockyardError):
        ctx([(name, "file", "x")])


def test_not_a_tar_is_refused() -> None:
    with pytest.raises(DockyardError):
        open_context(io.BytesIO(b"definitely not a tar archive" * 40))


def test_symlinks_resolve_inside_the_context() -> None:
    context = ctx(
        [
            ("real/f", "file", "data"),
            ("up", "sym", "../../../../etc"),
            ("abs", "sym", "/real"),
            ("rel", "sym", "real/f"),
        ]
    )
    assert context.lookup("up/passwd") is None  # /etc of the context, which is empty
    assert context.read(context.lookup("abs/f")) == b"data"  # type: ignore[arg-type]
    assert context.read(context.lookup("rel")) == b"data"  # type: ignore[arg-type]


def test_hardlinks_share_data_and_must_point_at_a_file() -> None:
    context = ctx([("f", "file", "data"), ("h", "link", "f")])
    assert context.read(context.lookup("h")) == b"data"  # type: ignore[arg-type]
    with pytest.raises(DockyardError):
        ctx([("h", "link", "missing")])


def plan(context, sources, dest, workdir="/"):
    return plan_copy(context, sources, dest, cmd="COPY", workdir=workdir, from_context=True)


def test_copy_plans_follow_docker() -> None:
    context = ctx(
        [("d/x", "file", "x"), ("d/s/y", "file", "y"), ("a.md", "file", "a"), ("b.md", "file", "b")]
    )
    p = plan(context, ["d"], "/dest")
    assert p.dest == "/dest" and [name for name, _ in p.items[0][1]] == ["s", "s/y", "x"]
    p = plan(context, ["*.md"], "/docs/")
    assert [node.path for node, _ in p.items] == ["a.md", "b.md"] and p.dest_is_dir
    assert plan(context, ["a.md"], "rel", workdir="/w").dest == "/w/rel"
    with pytest.raises(InvalidParameter, match="must be a directory and end with a /"):
        plan(context, ["a.md", "b.md"], "/x")
    with pytest.raises(InvalidParameter, match="Forbidden path outside the build context"):
        plan(context, ["../a.md"], "/x")
    with pytest.raises(InvalidParameter, match="file not found in build context"):
        plan(context, ["nope"], "/x")
    with pytest.raises(InvalidParameter, match="no source files were specified"):
        plan(context, ["*.txt"], "/x/")


def test_copy_digest_ignores_mtime_and_owner_but_not_content() -> None:
    def digest(data: str, mtime: int, uid: int, mode: int = 0o644) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("f")
            info.size, info.mtime, info.uid, info.mode = len(data), mtime, uid, mode
            tar.addfile(info, io.BytesIO(data.encode()))
        return plan(open_context(io.BytesIO(buf.getvalue())), ["f"], "/f").digest

    assert digest("x", 1, 0) == digest("x", 2, 1000)
    assert digest("x", 1, 0) != digest("y", 1, 0)
    assert digest("x", 1, 0) != digest("x", 1, 0, 0o755)
