"""Registry server: ours (`dockyard registry serve`) beside Debian's docker-registry, same client.

- manifest GETs per second, 50 concurrent clients on keep-alive connections, for a few seconds;
- a 200 MiB random layer: monolithic upload (POST + PUT ?digest=) and download, MB/s.
Both servers run privately on free loopback ports with their own roots, stopped by PID."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from common import VENV_BIN, report

LAYER_MIB = int(os.environ.get("BENCH_REGISTRY_LAYER_MIB", "200"))
CLIENTS = 50
SECONDS = float(os.environ.get("BENCH_REGISTRY_SECONDS", "5"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("registry did not start")


@contextmanager
def server(kind: str) -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix=f"dy-bench-{kind}-"))
    port = _free_port()
    if kind == "dockyard":
        cmd = [str(VENV_BIN / "dockyard"), "registry", "serve"]
        cmd += ["--addr", f"127.0.0.1:{port}", "--root", str(base / "data")]
    else:
        config = base / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        cmd = ["docker-registry", "serve", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


async def _push_blob(session: aiohttp.ClientSession, url: str, repo: str, path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    async with session.post(f"{url}/v2/{repo}/blobs/uploads/") as resp:
        assert resp.status == 202, await resp.text()
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = url + location
    sep = "&" if "?" in location else "?"
    size = path.stat().st_size
    with open(path, "rb") as f:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        async with session.put(f"{location}{sep}digest={digest}", data=f, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
    return digest


async def _pull_blob(session: aiohttp.ClientSession, url: str, repo: str, digest: str) -> int:
    total = 0
    async with session.get(f"{url}/v2/{repo}/blobs/{digest}") as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_chunked(1 << 20):
            total += len(chunk)
    return total


async def _manifest_gets(url: str, repo: str) -> float:
    accept = "application/vnd.oci.image.manifest.v1+json"
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    count = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.monotonic() + SECONDS

        async def client() -> None:
            nonlocal count
            while time.monotonic() < stop:
                async with session.get(
                    f"{url}/v2/{repo}/manifests/latest", headers={"Accept": accept}
                ) as resp:
                    await resp.read()
                    assert resp.status == 200
                count += 1

        start = time.monotonic()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return count / (time.monotonic() - start)


async def measure(url: str, layer: Path) -> dict[str, object]:
    repo = "bench/app"
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        start = time.perf_counter()
        layer_digest = await _push_blob(session, url, repo, layer)
        upload = time.perf_counter() - start
        start = time.perf_counter()
        got = await _pull_blob(session, url, repo, layer_digest)
        download = time.perf_counter() - start
        assert got == layer.stat().st_size
        config = layer.with_suffix(".config")
        config.write_bytes(b'{"architecture":"amd64","os":"linux"}')
        config_digest = await _push_blob(session, url, repo, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.stat().st_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": layer.stat().st_size,
                }
            ],
        }
        headers = {"Content-Type": manifest["mediaType"]}
        async with session.put(
            f"{url}/v2/{repo}/manifests/latest", data=json.dumps(manifest), headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
    rate = await _manifest_gets(url, repo)
    mb = layer.stat().st_size / 1e6
    return {
        "manifest_get_per_s": round(rate),
        "upload_MB_s": round(mb / upload, 1),
        "download_MB_s": round(mb / download, 1),
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dy-bench-layer-"))
    try:
        layer = work / "layer.bin"
        with open(layer, "wb") as f:
            for _ in range(LAYER_MIB):
                f.write(os.urandom(1 << 20))
        rows = []
        kinds = ["dockyard"] + (["docker-registry"] if shutil.which("docker-registry") else [])
        for kind in kinds:
            with server(kind) as url:
                row = {"server": kind, "layer_MiB": LAYER_MIB, "clients": CLIENTS}
                row.update(asyncio.run(measure(url, layer)))
                rows.append(row)
        report("registry", rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
