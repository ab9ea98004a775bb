"""docker's JSON progress messages (moby's pkg/jsonmessage): one JSON object per line, with a
`status`, an `id` (a layer's 12 hex digits, or a tag), and for transfers `progressDetail`
plus the `progress` bar text the docker CLI prints when it is not on a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dockyard.units import human_size_precision

Message = dict[str, Any]
Emit = Callable[[Message], None]
BAR_WIDTH = 50


def bar(current: int, total: int) -> str:
    """JSONProgress.String() at the daemon's width (200 columns: bar and counts, no ETA)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size_precision(current, 4):>8}"
    percentage = min(int(current / total * 100) // 2, BAR_WIDTH)
    box = f"[{'=' * percentage}>{' ' * max(BAR_WIDTH - percentage, 0)}] "
    cur, tot = human_size_precision(current, 4), human_size_precision(total, 4)
    numbers = f"{cur:>8}/{tot}" if current <= total else f"{cur:>8}"
    return box + numbers


def status(text: str, ident: str = "", *, detail: bool = False) -> Message:
    """A plain status line; `detail` adds the empty progressDetail docker puts on layer lines."""
    message: Message = {"status": text}
    if detail:
        message["progressDetail"] = {}
    if ident:
        message["id"] = ident
    return message


def transfer(action: str, ident: str, current: int, total: int) -> Message:
    return {
        "status": action,
        "progressDetail": {"current": current, "total": total},
        "progress": bar(current, total),
        "id": ident,
    }


def aux(value: dict[str, Any]) -> Message:
    return {"progressDetail": {}, "aux": value}


class Throttle:
    """Per-layer progress at most every `interval` seconds (docker's is 100 ms), always the
    last one."""

    def __init__(self, emit: Emit, action: str, ident: str, total: int, interval: float = 0.1):
        self._emit = emit
        self._action = action
        self._ident = ident
        self._total = total
        self._interval = interval
        self._last = 0.0
        self.current = 0

    def add(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now - self._last >= self._interval or self.current >= self._total:
            self._last = now
            self._emit(transfer(self._action, self._ident, self.current, self._total))
