"""The build's error type: docker's message plus the Dockerfile lines it is about."""

from __future__ import annotations

from dockyard.errors import InvalidParameter

__all__ = ["DockerfileError"]


class DockerfileError(InvalidParameter):
    """A Dockerfile that cannot be parsed or expanded.

    `message` is exactly what docker reports (for an instruction that does not parse that is
    `dockerfile parse error on line N: ...`); `line`..`end_line` are the 1-based source lines
    (0 when the error is about the whole file).
    """

    def __init__(self, message: str, line: int = 0, end_line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.end_line = line if end_line is None or end_line < line else end_line
