"""The daemon's life: restarts, crashes in the middle of an import or load, a second daemon on
the same data-root, the CLI starting a daemon by itself, and many clients at once."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Daemon, needs_root, start_daemon, stop_daemon
from tests.integration.test_bad_input import check_consistent, store_state

MiB = 1 << 20


def dockyard(
    env: dict[str, str], *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(VENV_BIN / "dockyard"), *args],
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def ok(daemon: Daemon, *args: str, input: bytes | None = None) -> str:
    result = dockyard(daemon.env(), *args, input=input)
    assert result.returncode == 0, f"dockyard {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout.decode()


def listing(daemon: Daemon) -> list[str]:
    fmt = "{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}}"
    return sorted(ok(daemon, "images", "-a", "--no-trunc", "--format", fmt).splitlines())


def one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
    return info.tobuf(format=tarfile.GNU_FORMAT)


def pinged(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def restart(base: Path) -> Daemon:
    """Start a daemon on a data-root a previous one used (maybe killed: its socket is stale)."""
    stale = base / "exec" / "dockyard.sock"
    if stale.exists() and not pinged(stale):
        stale.unlink()
    daemon = start_daemon(base)
    deadline = time.monotonic() + 30
    while not pinged(daemon.socket):
        if time.monotonic() > deadline:
            stop_daemon(daemon)
            raise AssertionError((base / "dockyardd.log").read_text())
        time.sleep(0.05)
    return daemon


@pytest.fixture
def base(busybox_tar: Path) -> Iterator[Path]:
    """A temp dir for daemons this test starts (and restarts); removed afterwards."""
    needs_root()
    path = Path(tempfile.mkdtemp(prefix="dockyard-life-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def running(base: Path, busybox_tar: Path) -> Iterator[list[Daemon]]:
    """A daemon with busybox; the test may replace daemons[0] (restart) and append others.
    Every daemon in the list is stopped at the end."""
    daemons = [start_daemon(base)]
    try:
        ok(daemons[0], "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield daemons
    finally:
        for daemon in daemons:
            if daemon.process.poll() is None:
                stop_daemon(daemon)


# -- restart ------------------------------------------------------------------------------------


def test_state_survives_restart(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    ok(d, "tag", "busybox", "kept/alias:1")
    ok(
        d,
        "import",
        "-c",
        "LABEL x=y",
        "-m",
        "second",
        "-",
        "kept/other:2",
        input=one_file_tar("f", b"x"),
    )
    ok(d, "import", "-", input=one_file_tar("g", b"dangling"))
    before = listing(d)
    inspect_before = ok(d, "image", "inspect", "kept/other:2", "busybox")
    history_before = ok(d, "history", "-H=false", "--no-trunc", "kept/other:2")
    state_before = check_consistent(d.data_root)
    stop_daemon(d)
    assert not d.socket.exists() and not (d.exec_root / "dockyardd.pid").exists()

    d = running[0] = restart(base)
    assert listing(d) == before
    assert ok(d, "image", "inspect", "kept/other:2", "busybox") == inspect_before
    assert ok(d, "history", "-H=false", "--no-trunc", "kept/other:2") == history_before
    assert check_consistent(d.data_root) == state_before
    # Save still reads every layer; what it wrote loads back after a delete.
    archive = base / "kept.tar"
    ok(d, "save", "-o", str(archive), "kept/other:2", "kept/alias:1")
    ok(d, "rmi", "kept/other:2")
    assert "Loaded image: kept/other:2" in ok(d, "load", "-i", str(archive))
    assert listing(d) == before
    assert "Untagged: kept/alias:1" in ok(d, "rmi", "kept/alias:1")
    check_consistent(d.data_root)


# -- crashes --------------------------------------------------------------------------------------


class SlowUpload:
    """A request whose body we send piece by piece (chunked), as a slow client would."""

    def __init__(self, sock_path: Path, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(str(sock_path))
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")

    def finish(self) -> bytes:
        self.sock.sendall(b"0\r\n\r\n")
        reply = b""
        while chunk := self.sock.recv(65536):
            reply += chunk
        self.sock.close()
        return reply

    def close(self) -> None:
        self.sock.close()


def _grows(paths: list[Path], at_least: int) -> bool:
    return any(p.is_file() and p.stat().st_size >= at_least for p in paths)


def _wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_kill_during_import_leaves_nothing_behind(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    before, state = listing(d), check_consistent(d.data_root)
    upload = SlowUpload(d.socket, "/v1.47/images/create?fromSrc=-&repo=big&tag=1")
    try:
        # A tar announcing 200 MiB of random data, of which a part arrives, slowly.
        upload.send(tar_header("big.bin", 200 * MiB))
        ingest = d.data_root / "content" / "ingest"
        for _ in range(24):
            upload.send(os.urandom(MiB))
            time.sleep(0.01)
        # The import is really under way: a partial blob and an unpacked partial file.
        _wait_for("a partial blob in ingest/", lambda: _grows(list(ingest.iterdir()), 4 * MiB))
        snapshots = [d.data_root / "snapshots" / n for n in os.listdir(d.data_root / "snapshots")]
        new = [s for s in snapshots if s.name not in state.snapshot_dirs]
        assert len(new) == 1
        _wait_for("the layer being unpacked", lambda: _grows([new[0] / "fs" / "big.bin"], 8 * MiB))
        d.process.send_signal(signal.SIGKILL)
        d.process.wait(timeout=30)
    finally:
        upload.close()
    assert list(ingest.iterdir()), "the kill came too late to test anything"

    d = running[0] = restart(base)
    assert check_consistent(d.data_root) == state
    assert listing(d) == before
    saved = dockyard(d.env(), "save", "busybox")  # the store still reads
    assert saved.returncode == 0 and len(saved.stdout) > 1 << 20
    # And it still writes: the same import, complete this time, succeeds.
    image_id = ok(d, "import", "-", "small:1", input=one_file_tar("f", os.urandom(MiB))).strip()
    assert image_id.startswith("sha256:")
    check_consistent(d.data_root)


def test_kill_during_load_leaves_nothing_behind(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    before, state = listing(d), check_consistent(d.data_root)
    upload = SlowUpload(d.socket, "/v1.47/images/load?quiet=1")
    tmp = d.data_root / "tmp"
    try:
        upload.send(tar_header("abc/layer.tar", 100 * MiB))
        for _ in range(16):
            upload.send(os.urandom(MiB))
            time.sleep(0.01)
        _wait_for(
            "the archive being staged in tmp/",
            lambda: _grows([p for p in tmp.rglob("*") if p.is_file()], 4 * MiB),
        )
        d.process.send_signal(signal.SIGKILL)
        d.process.wait(timeout=30)
    finally:
        upload.close()
    assert list(tmp.rglob("*")), "the kill came too late to test anything"

    d = running[0] = restart(base)
    assert check_consistent(d.data_root) == state
    assert listing(d) == before


# -- one daemon per data-root ---------------------------------------------------------------------


def test_second_daemon_on_same_data_root_refuses(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    before = listing(d)
    other = base / "other-exec"
    result = subprocess.run(
        [
            str(VENV_BIN / "dockyardd"),
            "--data-root",
            str(d.data_root),
            "--exec-root",
            str(other),
            "-H",
            f"unix://{other}/dockyard.sock",
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"dockyardd: data-root {d.data_root} is in use by another dockyard daemon\n"
    )
    assert not (other / "dockyard.sock").exists()
    assert not (other / "dockyardd.pid").exists()
    # The first daemon did not notice.
    assert listing(d) == before
    check_consistent(d.data_root)


def test_second_daemon_on_same_socket_refuses(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    result = subprocess.run(
        [
            str(VENV_BIN / "dockyardd"),
            "--data-root",
            str(base / "other-data"),
            "--exec-root",
            str(base / "other-exec"),
            "-H",
            d.host,
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"dockyardd: another daemon is already listening on {d.socket}\n"
    )
    assert pinged(d.socket)  # its socket is still there and still the first daemon's
    assert "busybox:latest" in " ".join(listing(d))


# -- the CLI starts a daemon ----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cli_starts_a_daemon_when_none_answers(base: Path) -> None:
    run_dir, data_root = base / "run", base / "data"
    sock = run_dir / "dockyard.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
    env |= {"DOCKYARD_HOST": f"unix://{sock}", "DOCKYARD_DATA_ROOT": str(data_root)}
    pid = 0
    try:
        result = dockyard(env, "images")
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().split() == [
            "REPOSITORY",
            "TAG",
            "IMAGE",
            "ID",
            "CREATED",
            "SIZE",
        ]
        pid = int((run_dir / "dockyardd.pid").read_text())
        assert _alive(pid)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert any(b"dockyard" in part for part in cmdline[:3]), cmdline
        assert [b"--data-root", str(data_root).encode()] in [
            cmdline[i : i + 2] for i in range(len(cmdline))
        ]
        assert (data_root / "dockyard.db").exists()

        # The next command uses that daemon rather than starting another.
        result = dockyard(env, "import", "-", "auto:1", input=one_file_tar("f", b"x"))
        assert result.returncode == 0, result.stderr.decode()
        result = dockyard(env, "info", "--format", "{{.DockerRootDir}} {{.Images}}")
        assert result.stdout.decode() == f"{data_root} 1\n"
        assert int((run_dir / "dockyardd.pid").read_text()) == pid
        assert (run_dir / "dockyardd.log").exists()

        os.kill(pid, signal.SIGTERM)
        _wait_for("the started daemon to exit", lambda: not _alive(pid))
        pid = 0
        assert not sock.exists() and not (run_dir / "dockyardd.pid").exists()
    finally:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_for("the started daemon to die", lambda: not _alive(pid))


def test_cli_reports_a_daemon_that_cannot_start(base: Path) -> None:
    """A data-root that cannot be used: the CLI says so instead of hanging."""
    (base / "file").write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST")}
    env |= {
        "DOCKYARD_HOST": f"unix://{base / 'run' / 'dockyard.sock'}",
        "DOCKYARD_DATA_ROOT": str(base / "file" / "data"),
    }
    result = dockyard(env, "images")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith(f"Cannot connect to the Dockyard daemon at unix://{base / 'run'}")
    assert "the daemon exited at start-up" in err
    assert not (base / "run" / "dockyard.sock").exists()


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_imports(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    shared = one_file_tar("shared.bin", os.urandom(8 * MiB))
    distinct = [one_file_tar(f"d{i}.bin", os.urandom(4 * MiB)) for i in range(4)]
    jobs = [(shared, f"same/{i}:1") for i in range(5)]
    jobs += [(data, f"diff/{i}:1") for i, data in enumerate(distinct)]
    jobs += [(distinct[0], "diff/again:1")]
    state = check_consistent(d.data_root)

    def run(job: tuple[bytes, str]) -> subprocess.CompletedProcess[bytes]:
        data, name = job
        return dockyard(d.env(), "import", "-", name, input=data)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    for result in results:
        assert result.returncode == 0, result.stderr.decode()
    image_ids = {r.stdout.decode().strip() for r in results}

    after = check_consistent(d.data_root)
    new_layers = after.layers - state.layers
    assert len(new_layers) == 5  # one layer per distinct tar, however many imported it
    assert len(after.snapshot_dirs - state.snapshot_dirs) == 5
    assert len(after.blobs - state.blobs) == 5 + len(image_ids)  # layer blobs + configs
    listed = listing(d)
    for _, name in jobs:
        assert any(line.split()[1] == name for line in listed), name


def test_concurrent_loads_of_one_archive(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    ok(d, "import", "-", "loadme:1", input=one_file_tar("f", os.urandom(4 * MiB)))
    archive = base / "loadme.tar"
    ok(d, "save", "-o", str(archive), "loadme:1")
    ok(d, "rmi", "loadme:1")
    state = check_consistent(d.data_root)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: dockyard(d.env(), "load", "-i", str(archive)), range(4)))
    for result in results:
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().endswith("Loaded image: loadme:1\n")
    after = check_consistent(d.data_root)
    assert len(after.layers - state.layers) == 1
    assert len(after.images - state.images) == 1


def test_list_and_inspect_answer_during_an_import(base: Path, running: list[Daemon]) -> None:
    d = running[0]
    upload = SlowUpload(d.socket, "/v1.47/images/create?fromSrc=-&repo=slow&tag=1")
    data = os.urandom(16 * MiB)
    try:
        upload.send(tar_header("slow.bin", len(data)))
        upload.send(data[: 4 * MiB])
        ingest = d.data_root / "content" / "ingest"
        _wait_for("the import to start", lambda: _grows(list(ingest.iterdir()), 1))
        # The import waits for more data; everything else must still answer, quickly.
        for args in (
            ["images"],
            ["image", "inspect", "busybox"],
            ["history", "busybox"],
            ["system", "df"],
            ["info"],
            ["version"],
        ):
            result = dockyard(d.env(), *args, timeout=20)  # a blocked daemon times out
            assert result.returncode == 0, (args, result.stderr.decode())
        save = dockyard(d.env(), "save", "busybox", timeout=20)
        assert save.returncode == 0 and len(save.stdout) > MiB
        assert "slow" not in ok(d, "images")  # not visible before it is complete
        upload.send(data[4 * MiB :])
        upload.send(b"\0" * 1024)  # end of archive
        reply = upload.finish()
    finally:
        upload.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b'"status":"sha256:' in reply
    assert ok(d, "images", "--format", "{{.Repository}}:{{.Tag}}", "slow") == "slow:1\n"
    check_consistent(d.data_root)


def test_commands_during_concurrent_imports(base: Path, running: list[Daemon]) -> None:
    """Readers and writers together: nothing fails, nothing waits on a lock for long."""
    d = running[0]
    stop = threading.Event()
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for args in (["images", "-a"], ["image", "inspect", "busybox"], ["system", "df"]):
                result = dockyard(d.env(), *args, timeout=30)
                if result.returncode != 0:
                    failures.append(f"{args}: {result.stderr.decode()}")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(
                    lambda i: dockyard(
                        d.env(), "import", "-", f"busy/{i}:1",
                        input=one_file_tar("x", os.urandom(4 * MiB)),
                    ),
                    range(4),
                )
            )  # fmt: skip
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert failures == []
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    after = store_state(d.data_root)
    assert sum(1 for ref, _ in after.refs if "/busy/" in ref) == 4
    check_consistent(d.data_root)


# -- clients that go away -------------------------------------------------------------------------


def _eventually_consistent(data_root: Path, expected: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert check_consistent(data_root) == expected
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("endpoint", ["/images/create?fromSrc=-&repo=gone", "/images/load"])
def test_client_gone_mid_upload_leaves_nothing(
    base: Path, running: list[Daemon], endpoint: str
) -> None:
    d = running[0]
    before, state = listing(d), check_consistent(d.data_root)
    upload = SlowUpload(d.socket, endpoint)
    upload.send(tar_header("x/layer.tar", 64 * MiB))
    for _ in range(8):
        upload.send(os.urandom(MiB))
    time.sleep(0.2)
    upload.close()  # mid-body: the daemon sees the body end early
    _eventually_consistent(d.data_root, state)
    assert listing(d) == before
    assert pinged(d.socket)


def test_client_gone_mid_save_keeps_daemon_answering(base: Path, running: list[Daemon]) -> None:
    """`dockyard save big | head -c 1k`: the daemon's writer fails; nothing may hang."""
    d = running[0]
    ok(d, "import", "-", "big:1", input=one_file_tar("big.bin", os.urandom(16 * MiB)))
    for _ in range(3):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(d.socket))
            s.sendall(b"GET /images/get?names=big:1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(1024).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
    result = dockyard(d.env(), "save", "-o", str(base / "nodir" / "x.tar"), "big:1", timeout=30)
    assert result.returncode == 1 and "does not exist" in result.stderr.decode()
    assert pinged(d.socket)
    # Still whole, still serving: a full save works.
    result = dockyard(d.env(), "save", "big:1", timeout=30)
    assert result.returncode == 0 and len(result.stdout) > 16 * MiB
    assert "big:1" in " ".join(listing(d))
