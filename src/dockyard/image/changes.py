"""`--change` lines (docker import/commit): Dockerfile instructions applied to an image config.

Pure. Docker joins the changes with newlines, parses them as a Dockerfile (comments, line
continuations, builder flags) and dispatches them against a copy of the config
(BuildFromConfig in moby's daemon/builder/dockerfile); only the config-changing instructions
are allowed. Word processing (quotes, escapes, `$VAR`/`${VAR...}` expansion against the config's
own environment as it was before the instruction) follows buildkit's shell lexer.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import posixpath
import re
from fractions import Fraction
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.image.shellwords import expand, expand_words, split_words
from dockyard.image.shellwords import go_quote as _go_quote

VALID = "cmd entrypoint healthcheck env expose label onbuild stopsignal user volume workdir".split()

_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_DURATION_UNITS.update({"m": 60 * 10**9, "h": 3600 * 10**9})
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # the Dockerfile parser's reWhitespace
_CONTINUATION = re.compile(r"([^\\])\\[ \t]*$|^\\[ \t]*$")
_SHELL = ["/bin/sh", "-c"]

_SIGNALS = {
    *"ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV".split(),
    *"STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ".split(),
    "RTMIN",
    "RTMAX",
    *(f"RTMIN+{i}" for i in range(1, 16)),
    *(f"RTMAX-{i}" for i in range(1, 15)),
}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, to nanoseconds ("1m30s" → 90_000_000_000, "-1.5h" allowed)."""
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise InvalidParameter(f"time: invalid duration {_go_quote(text)}")
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        assert m is not None  # the pattern matches the empty string
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise InvalidParameter(f"time: invalid duration {_go_quote(text)}")
        if not unit:
            raise InvalidParameter(f"time: missing unit in duration {_go_quote(text)}")
        if unit not in _DURATION_UNITS:
            raise InvalidParameter(
                f"time: unknown unit {_go_quote(unit)} in duration {_go_quote(text)}"
            )
        value = Fraction(int(whole or "0"))
        if frac:
            value += Fraction(int(frac), 10 ** len(frac))
        total += value * _DURATION_UNITS[unit]
        pos = m.end()
    ns = int(total)  # Go truncates the fractional nanoseconds
    if ns > 2**63 - 1:
        raise InvalidParameter(f"time: invalid duration {_go_quote(text)}")
    return sign * ns


# -- the Dockerfile parser (buildkit frontend/dockerfile/parser) --------------------------------


def _lines(text: str) -> list[str]:
    """Logical lines: comments dropped, `\\` continuations joined (parser.Parse)."""
    physical = text.split("\n")
    if physical and physical[0].startswith("\ufeff"):
        physical[0] = physical[0][1:]
    lines: list[str] = []
    i = 0
    while i < len(physical):
        line = physical[i].rstrip("\r\n").lstrip()
        i += 1
        if line.startswith("#"):
            continue
        line, end = _trim_continuation(line)
        if end and not line:
            continue
        parts = [line]
        while not end and i < len(physical):
            raw = physical[i].rstrip("\r\n")
            i += 1
            if raw.lstrip().startswith("#") or not raw.strip():
                continue
            raw, end = _trim_continuation(raw)
            parts.append(raw)
        lines.append("".join(parts))
    return lines


def _trim_continuation(line: str) -> tuple[str, bool]:
    if _CONTINUATION.search(line):
        return _CONTINUATION.sub(r"\1", line, count=1), False
    return line, True


def _split_command(line: str) -> tuple[str, list[str], str]:
    """(instruction, builder flags, arguments) of one logical line."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    args, flags = _extract_flags(parts[1])
    return parts[0], flags, args.strip()


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--name=value` words (extractBuilderFlags); `--` ends them."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while pos < len(line) and (quote or not line[pos].isspace()):
            ch = line[pos]
            pos += 1
            if not quote and ch in "'\"":
                quote, blank_ok = ch, True
                continue
            if quote and ch == quote:
                quote = ""
                continue
            if ch == "\\":
                if pos == len(line):
                    quote = ""
                    continue
                ch = line[pos]
                pos += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":
            return line[pos:], flags
        if blank_ok or text:
            flags.append(text)
        if pos >= len(line):
            return "", flags


def _parse_json(rest: str) -> list[str] | None:
    """The arguments of a JSON-array form, or None when rest is not one."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise InvalidParameter(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return value


def _parse_flags(flags: list[str], allowed: tuple[str, ...] = ()) -> dict[str, str]:
    values: dict[str, str] = {}
    for flag in flags:
        if flag == "--":
            break
        if not flag.startswith("--"):
            raise InvalidParameter(f"arg should start with -- : {flag}")
        name, eq, value = flag.partition("=")
        if name[2:] not in allowed:
            raise InvalidParameter(f"unknown flag: {name}")
        if name[2:] in values:
            raise InvalidParameter(f"duplicate flag specified: {name}")
        if not eq:
            raise InvalidParameter(f"missing a value on flag: {name}")
        values[name[2:]] = value
    return values


# -- instructions -----------------------------------------------------------------------------


def _shell_form(rest: str, *, empty_as_nil: bool) -> tuple[list[str] | None, bool]:
    """CMD/ENTRYPOINT arguments: (command line, prepend the shell)."""
    args = _parse_json(rest)
    if args is not None:
        return args, False
    if not rest:
        return (None if empty_as_nil else []), True
    return [rest], True


def _key_values(instruction: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL pairs, unexpanded (parseNameVal + parseKvps)."""
    words = split_words(rest)
    if not words:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidParameter(f"{instruction} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidParameter(
                f"Syntax error - can't find = in {_go_quote(word)}. Must be of the form: name=value"
            )
        name, _, value = word.partition("=")
        if not name:
            raise InvalidParameter(f"{instruction} names can not be blank")
        pairs.append((name, value))
    return pairs


def _healthcheck(flags: list[str], rest: str) -> dict[str, Any]:
    if not rest:
        raise InvalidParameter("HEALTHCHECK requires at least one argument")
    parts = re.split(r"\s+", rest, maxsplit=1)
    kind = parts[0].upper()
    command = parts[1] if len(parts) > 1 else ""
    if kind == "NONE":
        if command:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    values = _parse_flags(
        flags, ("interval", "timeout", "start-period", "start-interval", "retries")
    )
    if kind != "CMD":
        raise InvalidParameter(f"Unknown type {_go_quote(kind)} in HEALTHCHECK (try CMD)")
    args = _parse_json(command)
    if args is None:
        test = ["CMD-SHELL", command] if command else []
    else:
        test = ["CMD", *args] if args else []
    if not test:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    check: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        text = values.get(flag, "")
        duration = parse_duration(text) if text else 0
        if duration and duration < 10**6:
            raise InvalidParameter(f"Interval {_go_quote(flag)} cannot be less than 1ms")
        if duration:
            check[key] = duration
    if values.get("retries"):
        text = values["retries"]
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise InvalidParameter(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax")
        if not -(2**31) <= int(text) < 2**31:
            raise InvalidParameter(
                f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range"
            )
        if int(text) < 0:
            raise InvalidParameter(f"--retries cannot be negative ({int(text)})")
        if int(text):
            check["Retries"] = int(text)
    return check


def _ports(spec: str) -> list[str]:
    """The container ports of one EXPOSE word (go-connections' parsePortSpec)."""
    parts = spec.split(":")
    ip = ":".join(parts[:-2]) if len(parts) > 2 else ""
    container = parts[-1]
    port, _, proto = container.partition("/")
    if not port:
        raise InvalidParameter(f"no port specified: {spec}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    if ip:
        try:
            ipaddress.ip_address(ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip)
        except ValueError:
            raise InvalidParameter(f"invalid IP address: {ip}") from None
    start, dash, end = port.partition("-")
    numbers = [start, end] if dash and start != end else [start]
    if not all(n.isascii() and n.isdigit() and int(n) < 65536 for n in numbers):
        raise InvalidParameter(f"invalid containerPort: {port}")
    first, last = int(numbers[0]), int(numbers[-1])
    if last < first:
        raise InvalidParameter(f"invalid containerPort: {port}")
    return [f"{n}/{proto}" for n in range(first, last + 1)]


def _parser_checks(instruction: str, rest: str) -> None:
    """What the Dockerfile parser itself rejects (its per-instruction line parsers)."""
    if not rest:
        return
    if instruction in ("env", "label"):
        _key_values(instruction.upper(), rest)
    elif instruction in ("cmd", "entrypoint", "run", "shell", "volume", "add", "copy"):
        _parse_json(rest)
    elif instruction == "healthcheck":
        parts = re.split(r"\s+", rest, maxsplit=1)
        _parse_json(parts[1] if len(parts) > 1 else "")
    elif instruction == "onbuild":
        trigger, _, child = _split_command(rest)
        _parser_checks(trigger.lower(), child)


def _instruction_checks(instruction: str, flags: list[str], rest: str) -> None:
    """What parsing the instruction rejects: argument counts and flags."""
    name = instruction.upper()
    if instruction == "healthcheck":
        _healthcheck(flags, rest)
        return
    if instruction in ("user", "workdir", "stopsignal") and not rest:
        raise InvalidParameter(f"{name} requires exactly one argument")
    if instruction in ("expose", "onbuild") and not rest:
        raise InvalidParameter(f"{name} requires at least one argument")
    if instruction == "volume" and not _volume_args(rest):
        raise InvalidParameter("VOLUME requires at least one argument")
    if instruction == "stopsignal":
        return  # STOPSIGNAL never looks at its flags
    _parse_flags(flags)
    if instruction in ("env", "label"):
        _key_values(name, rest)
    elif instruction == "volume":
        if any(not v.strip() for v in _volume_args(rest)):
            raise InvalidParameter("VOLUME specified can not be an empty string")
    elif instruction == "onbuild":
        trigger = _split_command(rest)[0].upper()
        if trigger == "ONBUILD":
            raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")


def _volume_args(rest: str) -> list[str]:
    paths = _parse_json(rest)
    if paths is None:
        paths = _WHITESPACE.split(rest) if rest else []
    return paths


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of the container-config part of an image config with the changes applied.
    Nothing is applied unless every line parses; the first error is raised."""
    result = copy.deepcopy(config)
    if not changes:
        return result
    parsed = []
    for line in _lines("\n".join(changes)):
        instruction, flags, rest = _split_command(line)
        _parser_checks(instruction.lower(), rest)
        parsed.append((line, instruction, flags, rest))
    if not parsed:
        raise InvalidParameter("file with no instructions")
    for _, instruction, flags, rest in parsed:
        if instruction.lower() not in VALID:
            raise InvalidParameter(f"{instruction} is not a valid change command")
        _instruction_checks(instruction.lower(), flags, rest)
    state = {"cmd_set": False}
    for line, instruction, flags, rest in parsed:
        _apply_one(result, state, line, instruction.lower(), flags, rest)
    return result


def _env_map(env_list: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in env_list:
        name, _, value = entry.partition("=")
        env[name] = value
    return env


def _set_or_drop(config: dict[str, Any], key: str, value: list[str] | None) -> None:
    if value:
        config[key] = value
    else:
        config.pop(key, None)


def _apply_one(
    config: dict[str, Any],
    state: dict[str, bool],
    line: str,
    instruction: str,
    flags: list[str],
    rest: str,
) -> None:
    env_list = list(config.get("Env") or [])
    env = _env_map(env_list)
    if instruction in ("cmd", "entrypoint"):
        args, shell = _shell_form(rest, empty_as_nil=instruction == "entrypoint")
        command = [*_SHELL, *args] if shell and args is not None else args
        if instruction == "cmd":
            _set_or_drop(config, "Cmd", command)
            if args:
                state["cmd_set"] = True
        else:
            _set_or_drop(config, "Entrypoint", command)
            if not state["cmd_set"]:
                config.pop("Cmd", None)
    elif instruction == "env":
        for raw_name, raw_value in _key_values("ENV", rest):
            name, value = expand(raw_name, env), expand(raw_value, env)
            for i, entry in enumerate(env_list):
                if entry.partition("=")[0] == name:
                    env_list[i] = f"{name}={value}"
                    break
            else:
                env_list.append(f"{name}={value}")
        config["Env"] = env_list
    elif instruction == "label":
        labels = dict(config.get("Labels") or {})
        for raw_name, raw_value in _key_values("LABEL", rest):
            labels[expand(raw_name, env)] = expand(raw_value, env)
        config["Labels"] = labels
    elif instruction == "expose":
        ports = dict(config.get("ExposedPorts") or {})
        for word in _WHITESPACE.split(rest):
            for spec in expand_words(word, env):
                for port in _ports(spec):
                    ports[port] = {}
        config["ExposedPorts"] = ports
    elif instruction == "volume":
        volumes = dict(config.get("Volumes") or {})
        for raw in _volume_args(rest):
            path = expand(raw.strip(), env)
            if not path:
                raise InvalidParameter("VOLUME specified can not be an empty string")
            volumes[path] = {}
        config["Volumes"] = volumes
    elif instruction == "workdir":
        path = expand(rest, env)
        if not path:
            raise InvalidParameter("cannot normalize nothing")
        current = config.get("WorkingDir") or ""
        config["WorkingDir"] = posixpath.normpath(
            path if path.startswith("/") else posixpath.join("/", current, path)
        )
        if config["WorkingDir"].startswith("//"):
            config["WorkingDir"] = "/" + config["WorkingDir"].lstrip("/")
    elif instruction == "user":
        config["User"] = expand(rest, env)
    elif instruction == "stopsignal":
        signal = expand(rest, env)
        _check_signal(signal)
        config["StopSignal"] = signal
    elif instruction == "onbuild":
        expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", line, count=1)
        config["OnBuild"] = [*(config.get("OnBuild") or []), expression]
    elif instruction == "healthcheck":
        config["Healthcheck"] = _healthcheck(flags, rest)


def _check_signal(signal: str) -> None:
    """moby/sys/signal.ParseSignal: a number other than 0, or a Linux signal name."""
    if re.fullmatch(r"[+-]?\d+", signal):
        if int(signal) == 0:
            raise InvalidParameter(f"invalid signal: {signal}")
        return
    name = signal.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name not in _SIGNALS:
        raise InvalidParameter(f"invalid signal: {signal}")
