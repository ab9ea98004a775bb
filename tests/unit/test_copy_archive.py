"""image/copy_archive.py: Go's path rules, stat and tar of a path inside a root, and
extraction confined to its destination (hostile names, links, replacements)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.errors import DockyardError
from dockyard.image import copy_archive as ca
from dockyard.image import copy_extract as cx


# -- Go's path helpers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "clean", "base", "directory"),
    [
        ("", ".", ".", "."),
        ("/", "/", "/", "/"),
        ("//a//b/", "/a/b", "b", "/a/b"),  # Dir cleans what Split leaves: the trailing "/"
        ("/a/../..", "/", "..", "/"),  # Base does not clean
        ("a/./b/..", "a", "..", "a/b"),
        ("/etc/.", "/etc", ".", "/etc"),
    ],
)
def test_go_paths(path: str, clean: str, base: str, directory: str) -> None:
    assert ca.go_clean(path) == clean
    assert ca.go_base(path) == base
    assert ca.go_dir(path) == directory


@pytest.mark.parametrize(
    ("cleaned", "original", "expected"),
    [
        ("/etc", "/etc/", "/etc/"),
        ("/etc", "/etc/.", "/etc/."),
        ("/etc", "etc", "/etc"),
        ("/", "/.", "/."),
        ("/", "/", "/"),
    ],
)
def test_preserve_trailing(cleaned: str, original: str, expected: str) -> None:
    assert ca.preserve_trailing(cleaned, original) == expected


def test_split_path_dir_entry() -> None:
    assert ca.split_path_dir_entry("/a/b") == ("/a", "b")
    assert ca.split_path_dir_entry("/a/b/.") == ("/a/b", ".")
    assert ca.split_path_dir_entry("/a/b/") == ("/a", "b")
    assert ca.asserts_directory("/a/") and ca.asserts_directory("/a/.")
    assert not ca.asserts_directory("/a")


@given(st.text(alphabet="ab/.", max_size=12))
def test_go_clean_is_idempotent_and_never_climbs_from_root(path: str) -> None:
    cleaned = ca.go_clean(path)
    assert ca.go_clean(cleaned) == cleaned
    if path.startswith("/"):
        assert cleaned.startswith("/") and not cleaned.startswith("//")
        assert ".." not in cleaned.split("/")


def test_go_file_mode() -> None:
    assert ca.go_file_mode(stat.S_IFDIR | 0o755) == 2147484141  # what dockerd reports
    assert ca.go_file_mode(stat.S_IFLNK | 0o777) == 134218239
    assert ca.go_file_mode(stat.S_IFREG | 0o644) == 420
    assert ca.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == ca.MODE_SETUID | 0o755
    assert ca.go_file_mode(stat.S_IFCHR | 0o600) == ca.MODE_DEVICE | ca.MODE_CHAR_DEVICE | 0o600


# -- stat and tar inside a root ----------------------------------------------------------------
@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A container-like root: /etc/passwd, /etclink -> /etc, /tmp/up -> ../../../etc/passwd."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "tmp").mkdir()
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\n")
    os.link(r / "etc" / "group", r / "etc" / "group-")
    os.symlink("/etc", r / "etclink")
    os.symlink("../../../etc/passwd", r / "tmp" / "up")
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield r, fd
    finally:
        os.close(fd)


def test_stat_path_resolves_inside_the_root(root: tuple[Path, int]) -> None:
    _, fd = root
    link = ca.stat_path(fd, "/etclink")
    assert (link.name, link.link_target, link.mode & ca.MODE_SYMLINK) == (
        "etclink",
        "/etc",
        ca.MODE_SYMLINK,
    )
    followed = ca.stat_path(fd, "/etclink/")  # a trailing slash follows the link
    assert followed.is_dir and followed.name == "etclink"
    assert ca.stat_path(fd, "/tmp/up").link_target == "/etc/passwd"  # `..` stops at the root
    assert ca.stat_path(fd, "/etclink/passwd").size == 26
    assert ca.stat_path(fd, "/").name == "/"
    with pytest.raises(FileNotFoundError):
        ca.stat_path(fd, "/etclink/nosuch")


def _tar(fd: int, path: str) -> list[tuple[str, str, str]]:
    out = io.BytesIO()
    source = ca.source_in_root(fd, path, ca.stat_path(fd, path))
    ca.write_tar(source, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        return [(m.name + ("/" if m.isdir() else ""), m.type.decode(), m.linkname) for m in tar]


def test_tar_layouts(root: tuple[Path, int]) -> None:
    _, fd = root
    assert _tar(fd, "/etc") == [
        ("etc/", "5", ""),
        ("etc/group", "0", ""),
        ("etc/group-", "1", "etc/group"),  # a hardlink seen again
        ("etc/passwd", "0", ""),
    ]
    assert [n for n, _, _ in _tar(fd, "/etc/.")] == ["./", "./group", "./group-", "./passwd"]
    assert _tar(fd, "/etclink") == [("etclink", "2", "/etc")]
    assert [n for n, _, _ in _tar(fd, "/etclink/")][:2] == ["etclink/", "etclink/group"]
    assert _tar(fd, "/etc/passwd") == [("passwd", "0", "")]
    assert [n for n, _, _ in _tar(fd, "/")][:3] == ["/", "/etc/", "/etc/group"]


def test_tar_headers_as_moby_writes_them(root: tuple[Path, int]) -> None:
    r, fd = root
    os.utime(r / "etc" / "passwd", ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    out = io.BytesIO()
    ca.write_tar(ca.source_in_root(fd, "/etc/passwd", ca.stat_path(fd, "/etc/passwd")), out)
    data = out.getvalue()
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        [member] = tar.getmembers()
    assert member.mtime == 1_700_000_000  # whole seconds
    assert (member.uname, member.gname, member.pax_headers) == ("", "", {})


def test_export_layout_has_no_top_entry(root: tuple[Path, int]) -> None:
    _, fd = root
    out = io.BytesIO()
    ca.write_tar(ca.TarSource(os.dup(fd), None, "", top=False), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getnames()[:3] == ["etc", "etc/group", "etc/group-"]


def test_local_source(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("f")
    for path, arcname, expected in (
        (f"{tmp_path}/d", "", ["d", "d/f"]),
        (f"{tmp_path}/d/.", "", [".", "./f"]),
        (f"{tmp_path}/d", "renamed", ["renamed", "renamed/f"]),
        (f"{tmp_path}/d/f", "", ["f"]),
    ):
        out = io.BytesIO()
        ca.write_tar(ca.local_source(path, arcname), out)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            assert tar.getnames() == expected


# -- extraction --------------------------------------------------------------------------------
def _entries(*entries: tuple[str, str, bytes | str]) -> io.BytesIO:
    """(name, kind, data or link target) → a tar; kinds: f(ile) d(ir) s(ymlink) h(ardlink)."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            if kind == "f":
                assert isinstance(value, bytes)
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            info.type = {"d": tarfile.DIRTYPE, "s": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            info.linkname = str(value)
            tar.addfile(info)
    stream.seek(0)
    return stream


def _extract(dest: Path, stream: io.BytesIO, **options: object) -> None:
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        cx.extract_tar(stream, fd, dest_name=str(dest), **options)  # type: ignore[arg-type]
    finally:
        os.close(fd)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "keep").write_text("keep")
    return path


def _untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "keep"


def test_extract_follows_links_inside_the_destination(tmp_path: Path, outside: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(outside), dest / "abs")  # already there, pointing out
    os.symlink("../../../../../../../" + str(outside).lstrip("/"), dest / "rel")
    _extract(
        dest,
        _entries(
            ("abs/a", "f", b"a"),
            ("rel/b", "f", b"b"),
            ("new", "s", str(outside)),
            ("new/c", "f", b"c"),
            ("/absolute-name", "f", b"d"),
        ),
    )
    _untouched(outside)
    inside = dest / str(outside).lstrip("/")
    assert sorted(os.listdir(inside)) == ["a", "b", "c"]
    assert (dest / "absolute-name").read_bytes() == b"d"  # a leading / is stripped


@pytest.mark.parametrize(
    "entries",
    [
        [("../escape", "f", b"x")],
        [("a/../../escape", "f", b"x")],
        [("ok", "f", b"x"), ("link", "h", "../outside/keep")],
        [("link", "h", "/../../keep")],
    ],
)
def test_extract_refuses_names_that_climb(
    tmp_path: Path, outside: Path, entries: list[tuple[str, str, bytes | str]]
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DockyardError, match="invalid"):
        _extract(dest, _entries(*entries))
    _untouched(outside)


def test_extract_hardlink_through_a_link_stays_inside(tmp_path: Path, outside: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(outside), dest / "abs")
    with pytest.raises(FileNotFoundError):
        _extract(dest, _entries(("hl", "h", "abs/keep")))  # abs/keep inside dest: none
    _untouched(outside)
    assert not (dest / "hl").exists()


def test_extract_replaces_and_merges(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "d" / "old").write_text("old")
    (dest / "f").write_text("old")
    _extract(
        dest,
        _entries(
            ("d", "d", ""),
            ("d/new", "f", b"new"),
            ("f", "f", b"new"),
            ("x/y/z", "f", b"implied"),
            ("hl", "h", "f"),
            ("sl", "s", "/nowhere"),
        ),
    )
    assert sorted(os.listdir(dest / "d")) == ["new", "old"]  # a directory merges
    assert (dest / "f").read_text() == "new"
    assert (dest / "x" / "y").stat().st_mode & 0o777 == 0o755  # implied directories
    assert os.stat(dest / "hl").st_ino == os.stat(dest / "f").st_ino
    assert os.readlink(dest / "sl") == "/nowhere"


def test_no_overwrite_dir_non_dir(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "f").write_text("f")
    with pytest.raises(DockyardError) as exc:
        _extract(dest, _entries(("d", "f", b"x")), no_overwrite_dir_non_dir=True)
    assert exc.value.message == f'cannot overwrite directory "d" with non-directory "{dest}"'
    with pytest.raises(DockyardError) as exc:
        _extract(dest, _entries(("f", "d", "")), no_overwrite_dir_non_dir=True)
    assert exc.value.message == f'cannot overwrite non-directory "f" with directory "{dest}"'
    _extract(dest, _entries(("d", "f", b"x")))  # allowed by default: replaced
    assert (dest / "d").read_text() == "x"


def test_extract_rebase_and_owner(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    _extract(
        dest,
        _entries(("src", "d", ""), ("src/a", "f", b"a"), ("src/h", "h", "src/a")),
        rebase=cx.name_rebaser("src", "dst"),
        chown=(1234, 5678) if os.geteuid() == 0 else None,
        no_lchown=os.geteuid() != 0,
    )
    assert (dest / "dst" / "a").read_text() == "a"
    assert os.stat(dest / "dst" / "h").st_ino == os.stat(dest / "dst" / "a").st_ino
    if os.geteuid() == 0:
        assert (os.stat(dest / "dst" / "a").st_uid, os.stat(dest / "dst" / "a").st_gid) == (
            1234,
            5678,
        )


def test_name_rebaser() -> None:
    rebase = cx.name_rebaser("src", "dst")
    assert [rebase(n) for n in ("src", "src/a", "srcx", "other/src")] == [
        "dst",
        "dst/a",
        "srcx",
        "other/src",
    ]
    assert cx.name_rebaser(".", "dst")("./a") == "dst/a"
    assert cx.name_rebaser("", "dst")("/a") == "dst/a"
