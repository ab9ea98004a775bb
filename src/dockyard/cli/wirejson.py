"""JSON for the client's hot path without `import json`.

`json.decoder` and `json.encoder` compile regular expressions when imported, and importing `re`
(with `enum`) costs 12-15 ms of a ~60 ms `dockyard run --rm busybox true` on this machine class.
The C scanner and encoder that the json package itself uses need no regex; this module wires
them up for the two shapes the client needs: `loads` of a response and compact `dumps` of a
request body. Anything fancier (indent, sorting) uses the json package.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing imports re: the very cost this module avoids
if TYPE_CHECKING:
    from typing import Any


def _constant(name: str) -> float:
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


class _Decoding:
    """The attributes _json.make_scanner reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)


_scan = _json.make_scanner(_Decoding())
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes) -> Any:
    """Parse one JSON document (bytes are UTF-8); ValueError when it is not one."""
    text = data.decode() if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"invalid JSON at offset {start}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after JSON at offset {end}")
    return value


def _unserializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = _json.make_encoder(
    {},  # markers: detect cycles as json.dumps does
    _unserializable,
    _json.encode_basestring_ascii,
    None,  # indent
    ":",
    ",",
    False,  # sort_keys
    False,  # skipkeys
    True,  # allow_nan
)


def dumps(value: Any) -> str:
    """Compact JSON, ASCII only: what json.dumps(value, separators=(",", ":")) writes."""
    return "".join(_encode(value, 0))
