"""What every command shares: its spec, argument-count checks worded as docker's, the context
handed to it (the API client, output streams) and the errors that end it with an exit code."""

from __future__ import annotations

import sys

from .flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs 15 ms to import: annotations only
    from collections.abc import Callable
    from typing import Any, TextIO

    from .client import Client

BIN = "dockyard"


class CLIError(Exception):
    """Ends the command: message to stderr (when not empty), then exit with status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Command:
    __slots__ = ("description", "flags", "interspersed", "max_args", "min_args", "run", "usage")

    def __init__(
        self,
        run: Callable[[Context, dict[str, Any], list[str]], int | None],
        usage: str,
        description: str,
        flags: list[Flag] | None = None,
        *,
        min_args: int = 0,
        max_args: int | None = None,
        interspersed: bool = True,
    ) -> None:
        self.run = run
        self.usage = usage
        self.description = description
        self.flags = flags or []
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed

    def check_args(self, path: str, args: list[str]) -> None:
        """cobra's positional-argument validators, with docker's wording."""
        n, low, high = len(args), self.min_args, self.max_args
        use = f"{path} {self.usage}".rstrip()

        def plural(k: int) -> str:
            return "argument" if k == 1 else "arguments"

        if high == low and n != low:
            if low == 0:
                message = f"{BIN}: '{path}' accepts no arguments"
            else:
                message = f"{BIN}: '{path}' requires {low} {plural(low)}"
            hint = "Run"
        elif n < low and high is None:
            message = f"{BIN}: '{path}' requires at least {low} {plural(low)}"
            hint = "See"
        elif high is not None and low > 0 and not low <= n <= high:
            message = f"{BIN}: '{path}' requires at least {low} and at most {high} {plural(high)}"
            hint = "Run"
        elif high is not None and n > high:
            message = f"{BIN}: '{path}' requires at most {high} {plural(high)}"
            hint = "Run"
        else:
            return
        raise CLIError(f"{message}\n\nUsage:  {use}\n\n{hint} '{path} --help' for more information")


class Context:
    """What a command runs with. The client connects (and starts a daemon) on first use."""

    def __init__(self, host_flag: str | None, path: str) -> None:
        self.host_flag = host_flag
        self.path = path
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from .connect import connect

            self._client = connect(self.host_flag)
        return self._client

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
