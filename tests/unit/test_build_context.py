"""The context tar `dockyard build` sends: what goes in (.dockerignore, -f outside the context,
the stdin forms), the headers (read back with tarfile), and the flag checks."""

from __future__ import annotations

import gzip
import io
import os
import socket
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard import reference
from dockyard.cli import buildcontext
from dockyard.cli.command import CLIError
from dockyard.cli.commands import build
from dockyard.cli.commands.common import validate_env


def read_tar(chunks: Iterable[bytes]) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    data = b"".join(chunks)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            content = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            out[member.name] = (member, content)
    return out


def names(chunks: Iterable[bytes]) -> list[str]:
    return list(read_tar(chunks))


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def prepare(source: Path | str, dockerfile: str = "", stdin: bytes = b"") -> tuple[list[str], str]:
    chunks, param = build.prepare(str(source), dockerfile, io.BytesIO(stdin))
    return names(chunks), param


# -- headers ------------------------------------------------------------------------------------


def test_entries_modes_times_and_owner(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM busybox\n", "dir/a.txt": "hello"})
    os.chmod(tmp_path / "dir" / "a.txt", 0o4755)
    os.utime(tmp_path / "dir" / "a.txt", (1_600_000_000.7, 1_600_000_000.7))
    (tmp_path / "link").symlink_to("dir/a.txt")
    os.link(tmp_path / "dir" / "a.txt", tmp_path / "hard")
    os.mkfifo(tmp_path / "fifo")
    tar = read_tar(buildcontext.tar_directory(str(tmp_path), ["Dockerfile", "dir", "dir/a.txt"]))
    assert list(tar) == ["Dockerfile", "dir", "dir/a.txt"]
    info, content = tar["dir/a.txt"]
    assert content == b"hello"
    assert info.mode == 0o4755 and info.mtime == 1_600_000_000
    assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
    assert tar["dir"][0].isdir()
    paths = buildcontext.context_paths(str(tmp_path), "Dockerfile", dockerfile_from_stdin=False)
    tar = read_tar(buildcontext.tar_directory(str(tmp_path), paths))
    assert list(tar) == ["Dockerfile", "dir", "dir/a.txt", "fifo", "hard", "link"]
    assert tar["link"][0].issym() and tar["link"][0].linkname == "dir/a.txt"
    assert tar["hard"][0].islnk() and tar["hard"][0].linkname == "dir/a.txt"
    assert tar["fifo"][0].isfifo()


def test_raw_layout_is_go_like(tmp_path: Path) -> None:
    """USTAR magic, a directory name ending in "/", no record padding after the two zero blocks."""
    make_tree(tmp_path, {"d/f": "x"})
    raw = b"".join(buildcontext.tar_directory(str(tmp_path), ["d", "d/f"]))
    assert raw[:2] == b"d/" and raw[257:265] == b"ustar\x0000"
    assert len(raw) == 512 + 512 + 512 + 1024


def test_sockets_are_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM busybox\n"})
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        paths = buildcontext.context_paths(str(tmp_path), "Dockerfile", dockerfile_from_stdin=False)
        assert names(buildcontext.tar_directory(str(tmp_path), paths)) == ["Dockerfile"]


@pytest.mark.parametrize(
    "name",
    [
        "a" * 100,
        "d" * 60 + "/" + "f" * 90,  # USTAR prefix split
        "d" * 200 + "/" + "f" * 20,  # prefix too long: PAX
        "x" * 300,  # no slash at all: PAX
        "dir/ünïcödé.txt",  # not ASCII: PAX
    ],
)
def test_long_and_non_ascii_names(tmp_path: Path, name: str) -> None:
    raw = buildcontext.file_entry(name, b"data", 0o644, 5) + buildcontext.end_of_archive()
    tar = read_tar([raw])
    assert list(tar) == [name] and tar[name][1] == b"data" and tar[name][0].mtime == 5


def test_long_link_names_and_big_numbers() -> None:
    target = b"t/" * 80
    raw = buildcontext.header(b"l", 0o777, 0, -5, b"2", target) + buildcontext.end_of_archive()
    info, _ = read_tar([raw])["l"]
    assert info.linkname == target.decode() and info.mtime == -5


def test_security_capability_travels_as_pax(tmp_path: Path) -> None:
    path = tmp_path / "ping"
    path.write_bytes(b"bin")
    cap = bytes.fromhex("0000000300200000000000000000000000000000") + b"\0\0\0\0"
    try:
        os.setxattr(path, "security.capability", cap)
    except OSError:
        pytest.skip("needs root and a filesystem with security xattrs: cannot set capabilities")
    info, _ = read_tar(buildcontext.tar_directory(str(tmp_path), ["ping"]))["ping"]
    value = info.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert value[3] == 2 and len(value) == 20  # revision 3 written as revision 2


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM x\n", "b/c": "1", "a": "2", "b/a": "3"})

    def tar() -> bytes:
        paths = buildcontext.context_paths(str(tmp_path), "Dockerfile", dockerfile_from_stdin=False)
        return b"".join(buildcontext.tar_directory(str(tmp_path), paths))

    assert tar() == tar()
    assert names([tar()]) == ["Dockerfile", "a", "b", "b/a", "b/c"]


def test_is_archive() -> None:
    tar = buildcontext.file_entry("Dockerfile", b"FROM x\n") + buildcontext.end_of_archive()
    assert buildcontext.is_archive(tar[:1024])
    assert buildcontext.is_archive(gzip.compress(b"anything"))
    assert not buildcontext.is_archive(b"FROM busybox\nRUN true\n")
    assert not buildcontext.is_archive(bytes(1024))
    corrupt = bytearray(tar[:1024])
    corrupt[0] ^= 1
    assert not buildcontext.is_archive(bytes(corrupt))


def test_stream_reader_chunks_and_reports_once() -> None:
    seen: list[tuple[int, bool]] = []
    reader = buildcontext.StreamReader(
        [b"abc", b"", b"defgh"], lambda n, done: seen.append((n, done))
    )
    assert reader.read(4) == b"abcd"
    assert reader.read(100) == b"efgh"
    assert reader.read(100) == b""
    assert reader.read(100) == b""
    assert seen[-1] == (8, True) and [done for _, done in seen].count(True) == 1


# -- what goes in -------------------------------------------------------------------------------


def test_dockerignore_applied_build_files_kept(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\n",
            ".dockerignore": "*.log\nsecret/\n!secret/keep\nDockerfile\n.dockerignore\n",
            "a.log": "",
            "app.py": "",
            "secret/key": "",
            "secret/keep": "",
            "sub/b.log": "",
        },
    )
    got, param = prepare(tmp_path)
    assert param == "Dockerfile"
    assert got == [".dockerignore", "Dockerfile", "app.py", "secret/keep", "sub", "sub/b.log"]


def test_named_dockerfile_in_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, {"docker/Dockerfile.dev": "FROM x\n", ".dockerignore": "docker\n"})
    monkeypatch.chdir(tmp_path)
    got, param = prepare(".", "docker/Dockerfile.dev")
    assert param == "docker/Dockerfile.dev"
    assert got == [".dockerignore", "docker/Dockerfile.dev"]


def test_lowercase_dockerfile_is_found(tmp_path: Path) -> None:
    make_tree(tmp_path, {"dockerfile": "FROM x\n"})
    assert prepare(tmp_path)[1] == "dockerfile"


@pytest.mark.parametrize("with_ignore", [True, False])
def test_dockerfile_outside_the_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_ignore: bool
) -> None:
    ctx = make_tree(tmp_path / "ctx", {"app.txt": "x"})
    if with_ignore:
        (ctx / ".dockerignore").write_text("*.tmp")
    (tmp_path / "Df").write_text("FROM busybox\nCOPY . /\n")
    monkeypatch.chdir(tmp_path)
    chunks, param = build.prepare("ctx", "Df", io.BytesIO())
    tar = read_tar(chunks)
    assert param.startswith(".dockerfile.") and len(param) == len(".dockerfile.") + 20
    assert tar[param][1] == b"FROM busybox\nCOPY . /\n" and tar[param][0].mode == 0o600
    ignore = b"*.tmp" if with_ignore else b".dockerignore"
    assert tar[".dockerignore"][1] == ignore + b"\n" + param.encode() + b"\n"
    assert "app.txt" in tar and "Df" not in tar


def test_dockerfile_from_stdin_with_a_directory(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM ignored\n", "f": "1"})
    chunks, param = build.prepare(str(tmp_path), "-", io.BytesIO(b"FROM busybox\n"))
    tar = read_tar(chunks)
    assert tar[param][1] == b"FROM busybox\n"
    assert {"Dockerfile", "f", ".dockerignore", param} == set(tar)


def test_tar_on_stdin_goes_as_is(tmp_path: Path) -> None:
    raw = buildcontext.file_entry("Dockerfile", b"FROM x\n") + buildcontext.end_of_archive()
    chunks, param = build.prepare("-", "", io.BytesIO(raw + bytes(20000)))
    assert b"".join(chunks) == raw + bytes(20000) and param == ""
    zipped = gzip.compress(raw)
    chunks, param = build.prepare("-", "sub/Df", io.BytesIO(zipped))
    assert b"".join(chunks) == zipped and param == "sub/Df"


def test_dockerfile_on_stdin_becomes_the_context() -> None:
    chunks, param = build.prepare("-", "", io.BytesIO(b"FROM busybox\nRUN true\n"))
    tar = read_tar(chunks)
    assert param == "Dockerfile" and list(tar) == ["Dockerfile"]
    assert tar["Dockerfile"][1] == b"FROM busybox\nRUN true\n"


@pytest.mark.parametrize(
    ("source", "dockerfile", "stdin", "message"),
    [
        ("-", "-", b"", "invalid argument: can't use stdin for both build context and dockerfile"),
        (
            "-",
            "Dockerfile",
            b"FROM x\n",
            "unable to prepare context: ambiguous Dockerfile source: both stdin and flag "
            "correspond to Dockerfiles",
        ),
        ("nothere", "", b"", 'unable to prepare context: path "nothere" not found'),
        ("https://example.com/ctx.tar", "", b"", "building from a URL or git repository"),
    ],
)
def test_bad_sources(source: str, dockerfile: str, stdin: bytes, message: str) -> None:
    with pytest.raises(CLIError) as info:
        build.prepare(source, dockerfile, io.BytesIO(stdin))
    assert message in info.value.message and info.value.status == 1


def test_missing_dockerfile_and_file_as_context(tmp_path: Path) -> None:
    with pytest.raises(CLIError) as info:
        build.prepare(str(tmp_path), "", io.BytesIO())
    assert info.value.message == (
        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
        f"lstat {tmp_path}/Dockerfile: no such file or directory"
    )
    (tmp_path / "file").write_text("")
    with pytest.raises(CLIError) as info:
        build.prepare(str(tmp_path / "file"), "", io.BytesIO())
    assert info.value.message == (
        f"unable to prepare context: context must be a directory: {tmp_path}/file"
    )


def test_bad_dockerignore_pattern(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM x\n", ".dockerignore": "a[\n"})
    with pytest.raises(CLIError) as info:
        build.prepare(str(tmp_path), "", io.BytesIO())
    assert info.value.message == "error checking context: syntax error in pattern"


# -- flags --------------------------------------------------------------------------------------


@given(st.text(alphabet="abcAB019._-:/@", max_size=40))
def test_tag_fast_path_only_accepts_what_the_grammar_accepts(value: str) -> None:
    if build._simple_reference(value):
        reference.parse_normalized(value)


@pytest.mark.parametrize("value", ["busybox", "a/b:1.0", "my-app__x.y:v_1", "x" * 64 + ":t"])
def test_tag_accepted(value: str) -> None:
    assert build.check_tag(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Bad", "invalid reference format: repository name (library/Bad) must be lowercase"),
        ("a:", "invalid reference format"),
        ("-a", "invalid reference format"),
    ],
)
def test_tag_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        build.check_tag(value)


def test_query_build_args_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "v1")
    monkeypatch.delenv("UNSET_ARG", raising=False)
    opts = {
        "tag": ["a", "b:2"],
        "quiet": False,
        "no-cache": True,
        "rm": True,
        "force-rm": False,
        "pull": False,
        "target": "",
        "build-arg": [validate_env(v) for v in ["A=1", "FROM_ENV", "UNSET_ARG", "E="]],
        "label": [build.check_label(v) for v in ["k=v", "bare"]],
        "platform": "Linux/AMD64",
        "network": "default",
    }
    query = build._query(opts, "Dockerfile")
    assert query == [
        ("t", "a"),
        ("t", "b:2"),
        ("nocache", "1"),
        ("rm", "1"),
        ("dockerfile", "Dockerfile"),
        ("buildargs", '{"A":"1","FROM_ENV":"v1","UNSET_ARG":null,"E":""}'),
        ("labels", '{"k":"v","bare":""}'),
        ("platform", "linux/amd64"),
        ("networkmode", "default"),
    ]
    with pytest.raises(ValueError, match="invalid environment variable: =x"):
        validate_env("=x")
    with pytest.raises(ValueError, match="invalid label '=v': empty name"):
        build.check_label("=v")
