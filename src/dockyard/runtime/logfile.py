"""docker's json-file log format: one JSON object per line of output, with rotation.

`{"log":"hi\\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}` — a line is cut at
each newline, and at 16 KiB when no newline comes (docker's partial messages). With max_size,
the file is rotated to `<path>.1` … `<path>.<max_file-1>` as docker's json-file driver does.
"""

from __future__ import annotations

import json
import os
import time

PARTIAL_LIMIT = 16 * 1024


def rfc3339_nano(ns: int) -> str:
    seconds, frac = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


class JsonFileLog:
    def __init__(self, path: str, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._pending: dict[str, bytes] = {}
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Record output of `stream` ("stdout" or "stderr"); complete lines are written now."""
        buffer = self._pending.get(stream, b"") + data
        lines = []
        while True:
            cut = buffer.find(b"\n")
            if cut < 0 or cut >= PARTIAL_LIMIT:
                if len(buffer) >= PARTIAL_LIMIT:
                    lines.append(buffer[:PARTIAL_LIMIT])
                    buffer = buffer[PARTIAL_LIMIT:]
                    continue
                break
            lines.append(buffer[: cut + 1])
            buffer = buffer[cut + 1 :]
        self._pending[stream] = buffer
        if lines:
            self._emit(stream, lines)

    def flush(self) -> None:
        """Write what is left of unterminated lines (at the end of the output)."""
        for stream, rest in list(self._pending.items()):
            if rest:
                self._emit(stream, [rest])
        self._pending.clear()

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        stamp = rfc3339_nano(time.time_ns())
        text = bytearray()
        for line in lines:
            # docker checks before each entry: a file that holds max_size or more is rotated.
            if self.max_size > 0 and self._size >= self.max_size:
                if text:
                    os.write(self._fd, text)
                    text.clear()
                self._rotate()
            entry = json.dumps(
                {"log": line.decode("utf-8", "replace"), "stream": stream, "time": stamp},
                separators=(",", ":"),
            )
            encoded = (entry + "\n").encode()
            text += encoded
            self._size += len(encoded)
        if text:
            os.write(self._fd, text)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_file > 1:
            for n in range(self.max_file - 1, 1, -1):
                older = f"{self.path}.{n - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n}")
            os.replace(self.path, f"{self.path}.1")
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
