"""Our registry server for tests: `dockyard registry serve` on a free loopback port with its own
root, and a small http.client wrapper. Stopped by its process, never by name."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    def error_code(self) -> str:
        return json.loads(self.body)["errors"][0]["code"]


@dataclass
class RegistryServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    tls: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if self.tls:
            context = ssl._create_unverified_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=30, context=context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def push_blob(self, repo: str, data: bytes, headers: dict[str, str] | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        resp = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data, headers=headers
        )
        assert resp.status == 201, resp.body
        return digest

    def push_manifest(
        self, repo: str, ref: str, manifest: dict, media_type: str | None = None
    ) -> Response:
        data = json.dumps(manifest).encode()
        media_type = media_type or manifest.get("mediaType", "")
        return self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type}
        )


def image_manifest(config: str, config_size: int, layers: list[tuple[str, int]]) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": config_size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}
            for d, s in layers
        ],
    }


@contextlib.contextmanager
def registry_server(
    *args: str, root: Path | None = None, tls: bool = False
) -> Iterator[RegistryServer]:
    """Start `dockyard registry serve --addr 127.0.0.1:0` with extra args; stop it afterwards."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dy-reg-")))
        cmd = [str(VENV_BIN / "dockyard"), "registry", "serve", "--addr", "127.0.0.1:0"]
        cmd += ["--root", str(root / "data"), *args]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 30
            port = 0
            while time.monotonic() < deadline:
                line = proc.stderr.readline().decode()
                if not line:
                    raise RuntimeError(f"registry exited: {proc.wait()}")
                match = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match[1])
                    break
            # Keep draining stderr so the server never blocks on a full pipe.
            stack.callback(proc.stderr.close)
            drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            stack.callback(drain.wait)
            yield RegistryServer(root / "data", port, proc, tls)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
