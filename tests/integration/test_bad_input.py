"""Bad input gets a clear docker-style error, a non-zero exit, and changes nothing.

Every case here checks three things: the error text, the exit status, and that nothing was
stored: the image list is the same, the data-root holds no extra blob, snapshot, ingest or tmp
entry, and nothing was written outside the data-root (a sentinel directory next to it stays as
it was, its file keeps its single link).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Daemon, needs_root, start_daemon, stop_daemon

H64 = "a" * 64
SECRET = b"do not touch\n"


# -- what the store holds ----------------------------------------------------------------------


def _files(path: Path) -> set[str]:
    """Every path under `path`; a directory the daemon removes while we walk is just gone."""
    found = set()
    for top, dirs, files in os.walk(path):  # os.walk ignores directories that vanish
        rel = os.path.relpath(top, path)
        found |= {os.path.normpath(os.path.join(rel, n)) for n in dirs + files}
    return found


def _db(data_root: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{data_root / 'dockyard.db'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


@dataclass(frozen=True)
class StoreState:
    images: frozenset[str]
    refs: frozenset[tuple[str, str]]
    layers: frozenset[str]
    snapshot_rows: frozenset[tuple[str, str, str]]
    blobs: frozenset[str]
    snapshot_dirs: frozenset[str]
    ingest: frozenset[str]
    tmp: frozenset[str]


def store_state(data_root: Path) -> StoreState:
    conn = _db(data_root)
    try:
        images = frozenset(r["id"] for r in conn.execute("SELECT id FROM images"))
        refs = frozenset((r["ref"], r["image_id"]) for r in conn.execute("SELECT * FROM refs"))
        layers = frozenset(r["chain_id"] for r in conn.execute("SELECT chain_id FROM layers"))
        snapshots = frozenset(
            (r["key"], r["dir"], r["kind"]) for r in conn.execute("SELECT * FROM snapshots")
        )
    finally:
        conn.close()
    return StoreState(
        images=images,
        refs=refs,
        layers=layers,
        snapshot_rows=snapshots,
        blobs=frozenset(os.listdir(data_root / "content" / "blobs" / "sha256")),
        snapshot_dirs=frozenset(os.listdir(data_root / "snapshots")),
        ingest=frozenset(_files(data_root / "content" / "ingest")),
        tmp=frozenset(_files(data_root / "tmp")),
    )


def check_consistent(data_root: Path) -> StoreState:
    """The store of an idle daemon: every row has its files, every file its row, nothing
    half-done. Returns the state for further checks."""
    state = store_state(data_root)
    assert state.ingest == frozenset(), f"partial writes left in ingest/: {state.ingest}"
    assert state.tmp == frozenset(), f"staging left in tmp/: {state.tmp}"
    conn = _db(data_root)
    try:
        layers = {r["chain_id"]: dict(r) for r in conn.execute("SELECT * FROM layers")}
        snapshots = {r["key"]: dict(r) for r in conn.execute("SELECT * FROM snapshots")}
        image_layers = [dict(r) for r in conn.execute("SELECT * FROM image_layers")]
        refs = [dict(r) for r in conn.execute("SELECT * FROM refs")]
    finally:
        conn.close()
    assert all(s["kind"] == "committed" for s in snapshots.values()), snapshots
    assert set(snapshots) == set(layers), "a layer row without its snapshot, or the reverse"
    assert {s["dir"] for s in snapshots.values()} == state.snapshot_dirs
    for layer in layers.values():
        assert layer["blob"].removeprefix("sha256:") in state.blobs, layer
        assert layer["parent"] is None or layer["parent"] in layers
        assert snapshots[layer["chain_id"]]["parent"] == layer["parent"]
    for image_id in state.images:
        assert image_id.removeprefix("sha256:") in state.blobs, f"config of {image_id} missing"
    assert {row["image_id"] for row in image_layers} <= state.images
    assert {row["chain_id"] for row in image_layers} <= set(layers)
    assert {row["image_id"] for row in refs} <= state.images
    referenced = {layer["blob"] for layer in layers.values()} | set(state.images)
    assert {"sha256:" + b for b in state.blobs} == referenced, "a blob no row refers to"
    return state


# -- the daemon and its neighbourhood ------------------------------------------------------------


@dataclass
class Env:
    daemon: Daemon
    sentinel: Path  # a directory outside the data-root that hostile input aims at
    inputs: Path  # where the test writes its archives

    @property
    def data_root(self) -> Path:
        return self.daemon.data_root

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(VENV_BIN / "dockyard"), *args],
            env=self.daemon.env(),
            input=input,
            capture_output=True,
            timeout=60,
        )

    def ok(self, *args: str, input: bytes | None = None) -> str:
        result = self.run(*args, input=input)
        assert result.returncode == 0, f"dockyard {' '.join(args)}: {result.stderr.decode()}"
        return result.stdout.decode()

    def image_list(self) -> str:
        return self.ok("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")

    def sentinel_intact(self) -> None:
        assert sorted(os.listdir(self.sentinel)) == ["secret"], os.listdir(self.sentinel)
        secret = self.sentinel / "secret"
        assert secret.read_bytes() == SECRET
        assert secret.stat().st_nlink == 1, "something hard-linked the sentinel file"
        base = self.daemon.base
        assert sorted(os.listdir(base)) == ["data", "dockyardd.log", "exec", "inputs", "sentinel"]
        assert sorted(os.listdir(base / "exec")) == ["dockyard.sock", "dockyardd.pid"]


@pytest.fixture(scope="module")
def env(busybox_tar: Path) -> Iterator[Env]:
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bad-"))
    sentinel = base / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(SECRET)
    inputs = base / "inputs"
    inputs.mkdir()
    daemon = start_daemon(base)
    try:
        e = Env(daemon, sentinel, inputs)
        e.ok("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield e
    finally:
        stop_daemon(daemon)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def unchanged(env: Env) -> Iterator[Env]:
    """Asserts, after the test, that the store and its surroundings are as they were."""
    images, state = env.image_list(), check_consistent(env.data_root)
    yield env
    assert env.image_list() == images
    assert check_consistent(env.data_root) == state
    env.sentinel_intact()


def refused(env: Env, args: list[str], *, input: bytes | None = None) -> str:
    """Runs a command that must fail; returns its stderr."""
    result = env.run(*args, input=input)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    return result.stderr.decode()


# -- building hostile tars ---------------------------------------------------------------------


def entry(
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, link, 1_700_000_000
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _block(name: bytes, size: int, typeflag: bytes) -> bytes:
    """A raw ustar header block (for headers tarfile will not write)."""
    header = bytearray(512)
    header[0 : len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % 1_700_000_000
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def pax_bomb(claimed: int | None = None) -> bytes:
    """PAX extended headers that add up to more than any sane entry needs: either one header
    claiming `claimed` bytes (sent only in part), or a chain of 900 KiB headers."""
    if claimed is not None:
        return _block(b"././@PaxHeader", claimed, b"x") + b"1" * (4 << 20)
    body = b" comment=" + b"x" * (900 << 10) + b"\n"
    length = len(body) + 6  # the record starts with its own length: 6 decimal digits
    record = b"%d" % length + body
    assert len(record) == length
    padded = record + b"\0" * (-len(record) % 512)
    out = b""
    for _ in range(4):
        out += _block(b"././@PaxHeader", len(record), b"x") + padded
    return out + _block(b"file", 0, b"0") + b"\0" * 1024


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(
    layers: list[bytes],
    *,
    diff_ids: list[str] | None = None,
    tags: list[str] | None = None,
    manifest_layers: list[str] | None = None,
    config_name: str | None = None,
    extra: list[tuple[tarfile.TarInfo, bytes]] | None = None,
) -> bytes:
    """A docker-archive (`docker save` of docker < 25) with knobs for lying."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(x) for x in layers]},
            "history": [{"created": "2024-01-02T03:04:05Z"} for _ in layers],
        }
    ).encode()
    config_name = config_name or sha(config)[7:] + ".json"
    names = [f"{i:064x}/layer.tar" for i in range(1, len(layers) + 1)]
    manifest = [
        {
            "Config": config_name,
            "RepoTags": tags if tags is not None else ["hostile/app:1"],
            "Layers": manifest_layers if manifest_layers is not None else names,
        }
    ]
    entries = [entry(config_name, config)] if "/" not in config_name.strip("./") else []
    for name, data in zip(names, layers, strict=True):
        entries.append(entry(name.split("/")[0] + "/", kind=tarfile.DIRTYPE))
        entries.append(entry(name, data))
    entries += extra or []
    entries.append(entry("manifest.json", json.dumps(manifest).encode()))
    return make_tar(entries)


LAYER_A = make_tar([entry("a.txt", b"layer a\n")])
LAYER_B = make_tar([entry("b.txt", b"layer b\n")])


# -- invalid references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target,message",
    [
        ("Bad", "invalid reference format: repository name (library/Bad) must be lowercase"),
        ("bad/Name:1", "invalid reference format: repository name (bad/Name) must be lowercase"),
        ("a$b", "invalid reference format"),
        ("a:b:c", "invalid reference format"),
        ("x:-bad", "invalid reference format"),
        (H64, f"invalid repository name ({H64}), cannot specify 64-byte hexadecimal strings"),
        ("", "invalid reference format"),
    ],
)
def test_tag_with_invalid_target(unchanged: Env, target: str, message: str) -> None:
    err = refused(unchanged, ["tag", "busybox", target])
    assert err == f'Error parsing reference: "{target}" is not a valid repository/tag: {message}\n'


def test_tag_with_invalid_source(unchanged: Env) -> None:
    err = refused(unchanged, ["tag", "bu$ybox", "x:1"])
    assert err == (
        'Error parsing reference: "bu$ybox" is not a valid repository/tag: '
        "invalid reference format\n"
    )


def test_tag_with_digest_is_refused(unchanged: Env) -> None:
    err = refused(unchanged, ["tag", "busybox", f"x@sha256:{H64}"])
    assert err == "refusing to create a tag with a digest reference\n"


@pytest.mark.parametrize(
    "repo,message",
    [
        ("Bad", "invalid reference format: repository name (library/Bad) must be lowercase"),
        ("a$b", "invalid reference format"),
        (H64, f"invalid repository name ({H64}), cannot specify 64-byte hexadecimal strings"),
    ],
)
def test_import_with_invalid_name(unchanged: Env, repo: str, message: str) -> None:
    err = refused(unchanged, ["import", "-", repo], input=LAYER_A)
    assert err == message + "\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["rmi", "Bad"], "invalid reference format: repository name (library/Bad) must be lowercase"),
        (["rmi", "a$b"], "invalid reference format"),
        (["image", "inspect", "a$b"], "invalid reference format"),
        (["history", "Bad:1"], "invalid reference format: repository name (library/Bad) must be lowercase"),
        (["save", "-o", "/dev/null", "a$b"], "invalid reference format"),
    ],
)  # fmt: skip
def test_daemon_refuses_invalid_references(unchanged: Env, args: list[str], message: str) -> None:
    assert refused(unchanged, args).endswith(f"Error response from daemon: {message}\n")


@pytest.mark.parametrize("args", [["import", "-", "sha256:1"], ["tag", "busybox", "sha256:1"]])
def test_ambiguous_tag_is_refused(unchanged: Env, args: list[str]) -> None:
    err = refused(unchanged, args, input=LAYER_A)
    assert err == (
        "Error response from daemon: refusing to create an ambiguous tag using digest algorithm "
        "as name\n"
    )


def test_api_import_with_invalid_repo_stores_nothing(unchanged: Env) -> None:
    """The daemon checks the name before it reads the body, whatever client sends it."""
    from tests.integration.test_api import call

    reply = call(unchanged.daemon, "POST", "/images/create?fromSrc=-&repo=Bad", body=LAYER_A)
    assert reply.status == 400
    assert reply.json() == {
        "message": "invalid reference format: repository name (library/Bad) must be lowercase"
    }
    reply = call(unchanged.daemon, "POST", "/images/create?fromSrc=-&repo=sha256:1", body=LAYER_A)
    assert reply.status == 400
    reply = call(
        unchanged.daemon, "POST", "/images/create?fromSrc=-&repo=ok&changes=FOO%20x", body=LAYER_A
    )
    assert reply.status == 400 and "not a valid change command" in reply.json()["message"]  # type: ignore[index]


# -- unknown images and tags -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["rmi", "nosuch"], "No such image: nosuch:latest"),
        (["rmi", "busybox:nosuchtag"], "No such image: busybox:nosuchtag"),
        (["rmi", "-f", "busybox:nosuchtag", "nosuch:2"], "No such image: busybox:nosuchtag"),
        (["rmi", H64], f"No such image: sha256:{H64}"),
        (["tag", "nosuch", "x:1"], "No such image: nosuch:latest"),
        (["tag", "busybox:nosuchtag", "x:1"], "No such image: busybox:nosuchtag"),
        (["history", "nosuch"], "No such image: nosuch:latest"),
        (["image", "inspect", "nosuch:1"], "No such image: nosuch:1"),
        (["save", "-o", "/dev/null", "nosuch"], "No such image: nosuch"),
    ],
)
def test_unknown_images(unchanged: Env, args: list[str], message: str) -> None:
    result = unchanged.run(*args)
    if args[:2] == ["rmi", "-f"]:
        # docker: with -f, images that are not there are reported but are not a failure.
        assert result.returncode == 0
        err = result.stderr.decode()
    else:
        err = refused(unchanged, args)
    assert f"Error response from daemon: {message}\n" in err
    assert "busybox:latest" in unchanged.image_list()


# -- hostile layers given to import ---------------------------------------------------------------


def _import_case(case: str, sentinel: Path, busybox: bytes) -> tuple[bytes, str]:
    up = "../../../../"  # <base>/data/snapshots/<id>/fs -> <base>
    cases = {
        "truncated": lambda: (busybox[: len(busybox) // 2], "unexpected end of archive"),
        "truncated-header": lambda: (busybox[:700], "unexpected end of archive"),
        "garbage": lambda: (os.urandom(1 << 20), "invalid tar header"),
        "gzip-garbage": lambda: (gzip.compress(os.urandom(1 << 16)), "invalid tar header"),
        "truncated-gzip": lambda: (gzip.compress(busybox)[:50_000], "invalid gzip stream"),
        "dotdot": lambda: (
            make_tar([entry(up + "sentinel/pwned", b"x")]),
            "escapes the layer root",
        ),
        "dotdot-inner": lambda: (
            make_tar([entry("a/", kind=tarfile.DIRTYPE), entry("a/../../x", b"x")]),
            "escapes the layer root",
        ),
        "absolute": lambda: (make_tar([entry(f"{sentinel}/pwned", b"x")]), "absolute path"),
        "symlink-escape": lambda: (
            make_tar(
                [
                    entry("evil", kind=tarfile.SYMTYPE, link=up + "sentinel"),
                    entry("evil/pwned", b"x"),
                ]
            ),
            "target escapes the layer root",
        ),
        "hardlink-dotdot": lambda: (
            make_tar([entry("x", kind=tarfile.LNKTYPE, link=up + "sentinel/secret")]),
            "target escapes the layer root",
        ),
        "hardlink-absolute": lambda: (
            make_tar([entry("x", kind=tarfile.LNKTYPE, link=f"{sentinel}/secret")]),
            "secret",
        ),
        "hardlink-through-symlink": lambda: (
            make_tar(
                [
                    entry("evil", kind=tarfile.SYMTYPE, link=str(sentinel)),
                    entry("x", kind=tarfile.LNKTYPE, link="evil/secret"),
                ]
            ),
            "secret",
        ),
        "pax-bomb": lambda: (pax_bomb(), "extended tar header"),
        "pax-claims-huge": lambda: (pax_bomb(claimed=1 << 40), "extended tar header"),
    }
    return cases[case]()


IMPORT_CASES = [
    "truncated",
    "truncated-header",
    "garbage",
    "gzip-garbage",
    "truncated-gzip",
    "dotdot",
    "dotdot-inner",
    "absolute",
    "symlink-escape",
    "hardlink-dotdot",
    "hardlink-absolute",
    "hardlink-through-symlink",
    "pax-bomb",
    "pax-claims-huge",
]


@pytest.mark.parametrize("case", IMPORT_CASES)
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_import_hostile(unchanged: Env, busybox_tar: Path, case: str, via: str) -> None:
    data, message = _import_case(case, unchanged.sentinel, busybox_tar.read_bytes())
    if via == "file":
        path = unchanged.inputs / f"{case}.tar"
        path.write_bytes(data)
        err = refused(unchanged, ["import", str(path), "hostile/imp:1"])
        path.unlink()
    else:
        err = refused(unchanged, ["import", "-", "hostile/imp:1"], input=data)
    assert err.startswith("Error response from daemon: "), err
    assert message in err, err
    assert "Traceback" not in err


def test_import_symlink_into_root_stays_inside(env: Env) -> None:
    """An absolute symlink points into the container's root, not the host's: writing through
    it lands inside the layer, as docker does it."""
    before = check_consistent(env.data_root)
    data = make_tar(
        [entry("evil", kind=tarfile.SYMTYPE, link=str(env.sentinel)), entry("evil/pwned", b"x")]
    )
    image_id = env.ok("import", "-", "contained/app:1", input=data).strip()
    env.sentinel_intact()
    upper = env.ok("image", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", image_id).strip()
    assert Path(upper, str(env.sentinel).lstrip("/"), "pwned").read_bytes() == b"x"
    assert os.readlink(Path(upper, "evil")) == str(env.sentinel)
    env.ok("rmi", "contained/app:1")
    assert check_consistent(env.data_root) == before


# -- hostile archives given to load -----------------------------------------------------------


def _load_case(case: str, sentinel: Path, saved: bytes) -> tuple[bytes, str]:
    up = "../../../"  # <base>/data/tmp/load-xxx -> <base>
    layer_a_dir = f"{1:064x}"
    cases = {
        "truncated": lambda: (saved[: len(saved) // 2], "unexpected end of archive"),
        "garbage": lambda: (os.urandom(1 << 20), "invalid tar header"),
        "gzip-garbage": lambda: (gzip.compress(os.urandom(1 << 16)), "invalid tar header"),
        "empty-tar": lambda: (make_tar([]), "does not contain a manifest.json"),
        "dotdot": lambda: (make_tar([entry(up + "sentinel/pwned", b"x")]), "contains '..'"),
        "absolute": lambda: (make_tar([entry(f"{sentinel}/pwned", b"x")]), "absolute path"),
        "symlink-absolute": lambda: (
            make_tar([entry("manifest.json", kind=tarfile.SYMTYPE, link=f"{sentinel}/secret")]),
            "is not relative",
        ),
        "symlink-dotdot": lambda: (
            make_tar([entry("evil", kind=tarfile.SYMTYPE, link=up + "sentinel")]),
            "leaves the archive",
        ),
        "write-through-symlink": lambda: (
            make_tar(
                [
                    entry("d/", kind=tarfile.DIRTYPE),
                    entry("link", kind=tarfile.SYMTYPE, link="d"),
                    entry("link/x", b"x"),
                ]
            ),
            "cannot write through symlink",
        ),
        "hardlink-dotdot": lambda: (
            make_tar([entry("x", kind=tarfile.LNKTYPE, link=up + "sentinel/secret")]),
            "contains '..'",
        ),
        "hardlink-absolute": lambda: (
            make_tar([entry("x", kind=tarfile.LNKTYPE, link=f"{sentinel}/secret")]),
            "absolute path",
        ),
        "manifest-layer-outside": lambda: (
            docker_archive([LAYER_A], manifest_layers=[up + "sentinel/secret"]),
            "invalid archive",
        ),
        "manifest-layer-absolute": lambda: (
            # Looked up inside the archive, where it is not (the host's file is never read).
            docker_archive([LAYER_A], manifest_layers=[f"{sentinel}/secret"]),
            "secret: no such file or directory",
        ),
        "manifest-config-outside": lambda: (
            docker_archive([LAYER_A], config_name="../../../../etc/passwd"),
            "invalid archive",
        ),
        "manifest-layer-symlink-out": lambda: (
            docker_archive(
                [LAYER_A],
                manifest_layers=[f"{layer_a_dir}/link"],
                extra=[entry(f"{layer_a_dir}/link", kind=tarfile.SYMTYPE, link=up + "x")],
            ),
            "leaves the archive",
        ),
        "diffid-mismatch": lambda: (
            docker_archive([LAYER_A], diff_ids=[sha(b"something else")]),
            "invalid diffID for layer",
        ),
        "second-diffid-mismatch": lambda: (
            docker_archive([LAYER_A, LAYER_B], diff_ids=[sha(LAYER_A), sha(b"other")]),
            "invalid diffID for layer",
        ),
        "layers-count-mismatch": lambda: (
            docker_archive([LAYER_A], manifest_layers=[]),
            "layers length mismatch",
        ),
        "config-digest-mismatch": lambda: (
            docker_archive([LAYER_A], config_name=H64 + ".json"),
            "content has digest",
        ),
        "hostile-layer-inside": lambda: (
            docker_archive([make_tar([entry("../../../../../sentinel/pwned", b"x")])]),
            "escapes the layer root",
        ),
        "uppercase-tag": lambda: (docker_archive([LAYER_A], tags=["Bad:1"]), 'invalid tag "Bad:1"'),
        "ambiguous-tag": lambda: (
            docker_archive([LAYER_A], tags=["sha256:1"]),
            "refusing to create an ambiguous tag using digest algorithm as name",
        ),
        "pax-bomb": lambda: (pax_bomb(), "extended tar header"),
        "pax-claims-huge": lambda: (pax_bomb(claimed=1 << 40), "extended tar header"),
        "manifest-not-json": lambda: (
            make_tar([entry("manifest.json", b"{nope")]),
            "failed to decode",
        ),
    }
    return cases[case]()


LOAD_CASES = [
    "truncated",
    "garbage",
    "gzip-garbage",
    "empty-tar",
    "dotdot",
    "absolute",
    "symlink-absolute",
    "symlink-dotdot",
    "write-through-symlink",
    "hardlink-dotdot",
    "hardlink-absolute",
    "manifest-layer-outside",
    "manifest-layer-absolute",
    "manifest-config-outside",
    "manifest-layer-symlink-out",
    "diffid-mismatch",
    "second-diffid-mismatch",
    "layers-count-mismatch",
    "config-digest-mismatch",
    "hostile-layer-inside",
    "uppercase-tag",
    "ambiguous-tag",
    "pax-bomb",
    "pax-claims-huge",
    "manifest-not-json",
]


@pytest.fixture(scope="module")
def saved_busybox(env: Env) -> bytes:
    return subprocess.run(
        [str(VENV_BIN / "dockyard"), "save", "busybox"],
        env=env.daemon.env(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.mark.parametrize("case", LOAD_CASES)
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_load_hostile(unchanged: Env, saved_busybox: bytes, case: str, via: str) -> None:
    data, message = _load_case(case, unchanged.sentinel, saved_busybox)
    if via == "file":
        path = unchanged.inputs / f"{case}.tar"
        path.write_bytes(data)
        err = refused(unchanged, ["load", "-i", str(path)])
        path.unlink()
    else:
        err = refused(unchanged, ["load"], input=data)
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_load_failure_keeps_layers_other_images_use(unchanged: Env, saved_busybox: bytes) -> None:
    """An archive whose first layer is already stored (busybox's) and whose second is bad:
    the failed load removes what it added and nothing that was there."""
    with tarfile.open(fileobj=io.BytesIO(saved_busybox)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    data = docker_archive([layer, LAYER_A], diff_ids=[sha(layer), sha(LAYER_B)])
    err = refused(unchanged, ["load"], input=data)
    assert "invalid diffID for layer" in err
    # busybox still exports whole.
    assert unchanged.run("save", "-o", "/dev/null", "busybox").returncode == 0


def test_load_of_existing_image_with_bad_extra_image(unchanged: Env, saved_busybox: bytes) -> None:
    """All or nothing: a good image next to a bad one is not loaded either."""
    good_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(LAYER_A)]},
        }
    ).encode()
    bad_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha(b"not layer b")]},
        }
    ).encode()
    manifest = [
        {"Config": "good.json", "RepoTags": ["allornothing/good:1"], "Layers": ["a.tar"]},
        {"Config": "bad.json", "RepoTags": ["allornothing/bad:1"], "Layers": ["b.tar"]},
    ]
    data = make_tar(
        [
            entry("good.json", good_config),
            entry("bad.json", bad_config),
            entry("a.tar", LAYER_A),
            entry("b.tar", LAYER_B),
            entry("manifest.json", json.dumps(manifest).encode()),
        ]
    )
    err = refused(unchanged, ["load"], input=data)
    assert "invalid diffID for layer" in err
    assert "allornothing" not in unchanged.image_list()
