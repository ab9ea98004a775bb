"""Human-readable sizes and durations, as docker/go-units prints and parses them.

docker's table output ("1.99MB", "4 minutes ago") comes from go-units; users
and scripts compare these strings, so thresholds and rounding follow the Go
code exactly. Only builtins are used (no ``re``) to keep CLI start-up cheap.
"""

__all__ = [
    "bytes_size",
    "from_human_size",
    "human_duration",
    "human_size",
    "human_size_precision",
    "parse_go_float",
    "parse_ram_size",
]


from dockyard.gostrconv import go_quote

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DECIMAL_MAP = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_BINARY_MAP = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def _size_and_unit(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    """go-units getSizeAndUnit: divide while >= base, capped at the last unit."""
    i = 0
    last = len(abbrs) - 1
    while size >= base and i < last:
        size /= base
        i += 1
    return size, abbrs[i]


def _go_g(value: float, precision: int) -> str:
    """Go's fmt "%.*g".

    C's (and so Python's) %g uses the same rule as Go's strconv 'g' with an
    explicit precision: exponent form when exp < -4 or exp >= precision,
    trailing zeros removed, a two-digit minimum exponent ("1e+03"). Both round
    the exact binary value half-to-even, so the outputs agree; the one gap is
    precision 0, which Go treats as 1 just like C.
    """
    return format(value, f".{precision}g")


def human_size_precision(size: float, precision: int) -> str:
    """go-units HumanSizeWithPrecision: decimal units, e.g. (4256000, 3) -> "4.26MB"."""
    size, unit = _size_and_unit(float(size), 1000.0, _DECIMAL_ABBRS)
    return _go_g(size, precision) + unit


def human_size(size: float) -> str:
    """Size as ``docker images``/``docker ps -s`` print it (HumanSizeWithPrecision(n, 3)).

    Note go-units' own HumanSize uses precision 4; call
    ``human_size_precision(n, 4)`` where docker uses that (e.g. VirtualSize).
    """
    return human_size_precision(size, 3)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units with 4 significant digits, e.g. "1.5MiB"."""
    size, unit = _size_and_unit(float(size), 1024.0, _BINARY_ABBRS)
    return _go_g(size, 4) + unit


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (docker's "CREATED ... ago" column, minus " ago").

    Go truncates seconds and minutes but rounds hours to nearest (the
    "+ 0.5"), and computes years from the truncated hours; reproduced here.
    """
    secs = int(seconds)  # int() truncates toward zero, like Go's conversion
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def parse_go_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) with Go's error text.

    Python's float() is more lenient (surrounding whitespace), so that is
    rejected first; Go's "inf"/"nan"/"1_000.5" spellings are accepted by both.
    """
    bad = not s.isascii() or s != s.strip() or s[:1] in ("", "_") or s[-1] == "_" or "__" in s
    if not bad:
        try:
            body = s.lstrip("+-")
            if body[:2].lower() == "0x":
                if "p" not in body.lower():  # Go hex floats need a 'p' exponent
                    raise ValueError
                return float.fromhex(s.replace("_", ""))
            value = float(s)
        except ValueError:
            bad = True
        else:
            if value in (float("inf"), float("-inf")) and body.lower() not in ("inf", "infinity"):
                raise ValueError(f"strconv.ParseFloat: parsing {go_quote(s)}: value out of range")
            return value
    raise ValueError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")


def _parse_size(size_str: str, umap: dict[str, int]) -> int:
    """go-units parseSize: a number, an optional space, an optional unit suffix."""
    sep = max(size_str.rfind(c) for c in "0123456789. ")
    if sep == -1:  # there must be at least a digit
        raise ValueError(f"invalid size: '{size_str}'")
    if size_str[sep] != " ":
        num, sfx = size_str[: sep + 1], size_str[sep + 1 :]
    else:  # omit the space separator
        num, sfx = size_str[:sep], size_str[sep + 1 :]
    size = parse_go_float(num)
    if size < 0:  # backward compatibility: reject negative sizes
        raise ValueError(f"invalid size: '{size_str}'")
    if not sfx:
        return int(size)
    bad_suffix = ValueError(f"invalid suffix: '{sfx}'")
    if len(sfx) > 3:
        raise bad_suffix
    sfx = sfx.lower()
    bad_suffix = ValueError(f"invalid suffix: '{sfx}'")  # Go reports it lower-cased from here
    if sfx[0] == "b":
        if len(sfx) > 1:  # no extra characters allowed after b
            raise bad_suffix
        return int(size)
    mul = umap.get(sfx[0])
    if mul is None:
        raise bad_suffix
    size *= float(mul)
    if (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
        raise bad_suffix
    return int(size)


def from_human_size(size: str) -> int:
    """go-units FromHumanSize: SI units ("44kB" -> 44000). Raises ValueError(go message)."""
    return _parse_size(size, _DECIMAL_MAP)


def parse_ram_size(size: str) -> int:
    """go-units RAMInBytes: binary units, "b" optional ("512m" -> 536870912).

    Raises ValueError with go-units' message ("invalid size: 'x'").
    """
    return _parse_size(size, _BINARY_MAP)
