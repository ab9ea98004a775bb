"""docker's flag values (pure): `--ulimit`, `--cpus`, `--restart`, `--env-file`, signals.

The docker CLI parses these before it calls the API, and the daemon checks some again; both
our CLI and our engine use these functions, so the texts of their errors (which users and
scripts match on) are docker's in both places. Imports are cheap: the CLI loads this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dockyard.errors import InvalidParameter
from dockyard.gostrconv import go_parse_int as _parse_int

ULIMIT_NAMES: frozenset[str] = frozenset(
    {
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    }
)


def go_parse_int(text: str) -> int:
    """strconv.ParseInt(text, 10, 64) with Go's error texts, as InvalidParameter."""
    try:
        return _parse_int(text)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """`--ulimit name=soft[:hard]` -> (name, soft, hard); -1 means unlimited (go-units)."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise InvalidParameter(f"invalid ulimit argument: {value}")
    if name not in ULIMIT_NAMES:
        raise InvalidParameter(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise InvalidParameter(
            f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
        )
    # go-units parses the hard value first, so its error wins when both are bad.
    hard = go_parse_int(parts[1]) if len(parts) == 2 else None
    soft = go_parse_int(parts[0])
    hard = soft if hard is None else hard
    if hard != -1:
        if soft == -1:
            raise InvalidParameter(
                "ulimit soft limit must be less than or equal to hard limit: "
                f"soft: -1 (unlimited), hard: {hard}"
            )
        if soft > hard:
            raise InvalidParameter(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )
    return name, soft, hard


_DECIMAL = r"[+-]?(?:(\d+)(?:\.(\d*))?|\.(\d+))(?:[eE]([+-]?\d+))?"
_RATIO = r"([+-]?\d+)/(\d+)"


def parse_cpus(value: str) -> int:
    """`--cpus 1.5` -> NanoCPUs (1500000000), as the docker CLI's big.Rat parsing does.

    Accepts decimals with an exponent and "a/b" fractions. Go's hex and octal forms are not
    accepted (nobody writes --cpus 0x2). Exponents are bounded so hostile input cannot make us
    compute 10**huge; past the bound a value is either too precise or meaninglessly large.
    """
    import re  # with fractions, ~15 ms to import: only `--cpus` pays it
    from fractions import Fraction

    bad = InvalidParameter(f"failed to parse {value} as a rational number")
    if len(value) > 400:
        raise bad
    if m := re.fullmatch(_RATIO, value, re.ASCII):
        if int(m.group(2)) == 0:
            raise bad
        cpus = Fraction(int(m.group(1)), int(m.group(2)))
    elif m := re.fullmatch(_DECIMAL, value, re.ASCII):
        exponent = int(m.group(4) or 0)
        if abs(exponent) > 1000:
            mantissa = value.lower().split("e")[0]
            if not mantissa.strip("+-.0"):
                return 0
            if exponent < 0:
                raise InvalidParameter("value is too precise")
            raise bad
        cpus = Fraction(value)
    else:
        raise bad
    nano = cpus * 1_000_000_000
    if nano.denominator != 1:
        raise InvalidParameter("value is too precise")
    # Go's Int64() keeps the low 64 bits of a bigger numerator.
    return (nano.numerator + 2**63) % 2**64 - 2**63


RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


def parse_restart_policy(policy: str) -> tuple[str, int]:
    """`--restart name[:max-retries]` -> (name, max_retries), checked as CLI + daemon do.

    "" returns ("", 0): docker keeps an empty name for old API clients, meaning "no".
    """
    if policy == "":
        return "", 0
    name, sep, count = policy.partition(":")
    if sep and name == "":
        raise InvalidParameter("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count != "":
        try:
            retries = go_parse_int(count)
        except InvalidParameter:
            raise InvalidParameter(
                "invalid restart policy format: maximum retry count must be an integer"
            ) from None
    if name in ("always", "unless-stopped", "no"):
        if retries != 0:
            msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise InvalidParameter(msg + (" and cannot be negative" if retries < 0 else ""))
    elif name == "on-failure":
        if retries < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    else:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of "
            "'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    return name, retries


_ENV_LINE_MAX = 64 * 1024  # bufio.MaxScanTokenSize


def parse_env_file(
    data: str | bytes,
    lookup: Mapping[str, str] | Callable[[str], str | None] | None = None,
    *,
    filename: str | None = None,
) -> list[str]:
    """`--env-file` content -> ["K=V", ...] with the docker CLI's rules (cli/pkg/kvfile).

    Leading whitespace is dropped, trailing kept (it is part of the value); "#" lines and blank
    lines are skipped; a UTF-8 BOM on line 1 is removed; "K" alone takes its value from
    `lookup` (the client's environment) and is dropped when not found there. Keys may not
    contain spaces or tabs. With `filename`, errors read "invalid env file (NAME): ..." as the
    CLI prints them.
    """
    try:
        return _parse_kv_lines(data, lookup)
    except InvalidParameter as e:
        if filename is None:
            raise
        raise InvalidParameter(f"invalid env file ({filename}): {e.message}") from None


def _parse_kv_lines(
    data: str | bytes, lookup: Mapping[str, str] | Callable[[str], str | None] | None
) -> list[str]:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # a final newline does not start another line
    out: list[str] = []
    for number, chunk in enumerate(lines, 1):
        chunk = chunk.removesuffix(b"\r")
        if len(chunk) > _ENV_LINE_MAX:
            raise InvalidParameter("bufio.Scanner: token too long")
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            shown = " ".join(str(b) for b in chunk)
            raise InvalidParameter(f"invalid utf8 bytes at line {number}: [{shown}]") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        line = text.lstrip(" \t\n\v\f\r\x85\xa0\u2000\u2001\u2002\u2003\u3000")
        if not line or line.startswith("#"):
            continue
        key, sep, _value = line.partition("=")
        if not key:
            raise InvalidParameter(f"no variable name on line '{line}'")
        if " " in key or "\t" in key:
            raise InvalidParameter(f"variable '{key}' contains whitespaces")
        if sep:
            out.append(line)
            continue
        if lookup is None:
            continue
        found = lookup.get(line) if isinstance(lookup, Mapping) else lookup(line)
        if found is not None:
            out.append(f"{key}={found}")
    return out


def parse_signal(value: str) -> int:
    """A stop signal by number or name, with or without SIG (moby signal.ParseSignal)."""
    try:
        number = go_parse_int(value)
    except InvalidParameter:
        number = None
    if number is not None:
        if number == 0:
            raise InvalidParameter(f"Invalid signal: {value}")
        return number
    name = value.upper().removeprefix("SIG")
    sig = _signal_numbers().get(name)
    if sig is None:
        raise InvalidParameter(f"Invalid signal: {value}")
    return sig


def _signal_numbers() -> dict[str, int]:
    import signal

    names = {s.name.removeprefix("SIG"): int(s) for s in signal.Signals if "_" not in s.name}
    names.pop("RTMIN", None)
    names.pop("RTMAX", None)
    # moby's Linux map has RTMIN, RTMIN+1..+15, RTMAX-14..-1, RTMAX (34..64).
    rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    names["RTMIN"], names["RTMAX"] = rtmin, rtmax
    for i in range(1, 16):
        names[f"RTMIN+{i}"] = rtmin + i
        names[f"RTMAX-{i}"] = rtmax - i
    names.setdefault("IOT", int(signal.SIGABRT))
    names.setdefault("POLL", int(signal.SIGIO))
    names.setdefault("UNUSED", 31)
    return names
