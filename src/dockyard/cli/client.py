"""A small HTTP/1.1 client for the Engine API over a unix socket (or TCP).

Hand-written on `_socket` rather than http.client or aiohttp: the CLI's start-up is measured
and those imports alone cost 45-250 ms on our machines (see the note on the foundation issue).
"""

from __future__ import annotations

import _socket
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs 15 ms to import: annotations only
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

CHUNK = 1 << 20
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encoding as urllib.parse.quote does it (that module costs 16 ms to import)."""
    allowed = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in allowed else f"%{b:02X}" for b in text.encode())


def urlencode(pairs: list[tuple[str, Any]]) -> str:
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in pairs)


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    pass


class _Reader:
    """Buffered reads from a socket: lines for the head, exact sizes for the body."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                return line
            if not self._fill():
                raise ConnectError("connection closed by the daemon")

    def some(self, limit: int) -> bytes:
        if not self.buf and not self._fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data


class Response:
    def __init__(self, sock: Any, reader: _Reader, method: str) -> None:
        self._sock = sock
        self._reader = reader
        status_line = reader.line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectError(f"malformed response from the daemon: {status_line!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while line := reader.line():
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = self.headers.get("content-length")
        self._remaining = int(length) if length is not None else -1
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._remaining = 0
            self._chunked = False
        self._chunk_left = 0
        self._done = self._remaining == 0

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        while not self._done:
            if self._chunked:
                if self._chunk_left == 0:
                    size = int(self._reader.line().split(b";")[0], 16)
                    if size == 0:
                        while self._reader.line():
                            pass
                        self._done = True
                        break
                    self._chunk_left = size
                data = self._reader.some(self._chunk_left)
                if not data:
                    raise ConnectError("connection closed before the response ended")
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    self._reader.line()
                yield data
            else:
                limit = CHUNK if self._remaining < 0 else min(CHUNK, self._remaining)
                data = self._reader.some(limit)
                if not data:
                    if self._remaining > 0:
                        raise ConnectError("connection closed before the response ended")
                    self._done = True
                    break
                if self._remaining > 0:
                    self._remaining -= len(data)
                    self._done = self._remaining == 0
                yield data
        self.close()

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        from . import wirejson

        return wirejson.loads(self.read() or b"null")

    def lines(self) -> Iterator[bytes]:
        """Newline-separated records of a JSON progress stream."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _connect(host: str) -> Any:
    if host.startswith("unix://"):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        address: Any = host[len("unix://") :]
    elif host.startswith("tcp://"):
        name, _, port = host[len("tcp://") :].rpartition(":")
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        address = (name, int(port))
    else:
        raise ConnectError(f"unsupported protocol in host {host!r}")
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise ConnectError(exc.strerror or str(exc)) from None
    return sock


class Client:
    def __init__(self, host: str, on_unreachable: Callable[[str], None] | None = None) -> None:
        """on_unreachable(host) runs once when nothing answers, e.g. to start a daemon."""
        self.host = host
        self._on_unreachable = on_unreachable

    def _connect(self) -> Any:
        try:
            return _connect(self.host)
        except ConnectError:
            if self._on_unreachable is None:
                raise
            hook, self._on_unreachable = self._on_unreachable, None
            hook(self.host)
            return _connect(self.host)

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> Response:
        path = quote(path, safe="/:@")
        if query:
            items = query.items() if isinstance(query, dict) else query
            path += "?" + urlencode([(k, v) for k, v in items if v is not None])
        sock = self._connect()
        head = [f"{method} {path} HTTP/1.1", "Host: api"]
        head.append("User-Agent: Dockyard-Client")
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        try:
            if body is None:
                sock.sendall(("\r\n".join([*head, "Content-Length: 0", "", ""])).encode())
            elif isinstance(body, bytes):
                head.append(f"Content-Length: {len(body)}")
                sock.sendall(("\r\n".join([*head, "", ""])).encode() + body)
            else:
                try:
                    self._send_stream(sock, head, body)
                except (BrokenPipeError, ConnectionResetError):
                    # The daemon answered (an error) before taking the whole body: read it.
                    pass
            response = Response(sock, _Reader(sock), method)
        except OSError as exc:
            sock.close()
            raise ConnectError(exc.strerror or str(exc)) from None
        if check and response.status >= 400:
            raise _api_error(response)
        return response

    @staticmethod
    def _send_stream(sock: Any, head: list[str], body: BinaryIO) -> None:
        """A regular file goes with its length and sendfile; a pipe goes chunked."""
        try:
            fd = body.fileno()
            st = os.fstat(fd)
            is_file = (st.st_mode & 0o170000) == 0o100000
        except (OSError, AttributeError, ValueError):
            is_file = False
        if is_file:
            offset = body.tell()
            size = st.st_size - offset
            sock.sendall(("\r\n".join([*head, f"Content-Length: {size}", "", ""])).encode())
            sent = 0
            while sent < size:
                n = os.sendfile(sock.fileno(), fd, offset + sent, min(size - sent, 1 << 30))
                if n == 0:
                    break
                sent += n
            return
        sock.sendall(("\r\n".join([*head, "Transfer-Encoding: chunked", "", ""])).encode())
        while data := body.read(CHUNK):
            sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        sock.sendall(b"0\r\n\r\n")

    def hijack(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: bytes | None = None,
    ) -> tuple[Any, bytes]:
        """Send a request that takes the connection over (attach, exec start): returns the raw
        socket, and what already came after the response head."""
        path = quote(path, safe="/:@")
        if query:
            items = query.items() if isinstance(query, dict) else query
            path += "?" + urlencode([(k, v) for k, v in items if v is not None])
        sock = self._connect()
        payload = body or b""
        head = [
            f"{method} {path} HTTP/1.1",
            "Host: api",
            "User-Agent: Dockyard-Client",
            "Connection: Upgrade",
            "Upgrade: tcp",
            "Content-Type: application/json" if payload else "Content-Type: text/plain",
            f"Content-Length: {len(payload)}",
        ]
        try:
            sock.sendall(("\r\n".join([*head, "", ""])).encode() + payload)
            reader = _Reader(sock)
            response = Response(sock, reader, method)
        except OSError as exc:
            sock.close()
            raise ConnectError(exc.strerror or str(exc)) from None
        if response.status >= 400:
            raise _api_error(response)
        leftover = bytes(reader.buf)
        reader.buf.clear()
        return sock, leftover

    def get_json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query).json()


def _api_error(response: Response) -> APIError:
    body = response.read()
    message = body.decode(errors="replace").strip()
    if response.headers.get("content-type", "").startswith("application/json"):
        from . import wirejson

        try:
            message = wirejson.loads(body).get("message", message)
        except (ValueError, AttributeError):
            pass
    return APIError(response.status, message)
