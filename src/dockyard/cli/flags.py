"""Command-line flag parsing with spf13/pflag semantics (what docker's cobra uses).

docker's CLI behaviour is defined by pflag: how ``-abc`` groups split, when a
value is taken from the next argument, and the exact wording of every error.
We re-implement that here instead of using argparse/click because:

* argparse/click word errors differently and accept different syntaxes
  (e.g. argparse allows abbreviated long options, pflag does not);
* start-up time matters: this module imports nothing but ``os`` (already
  loaded by the interpreter), no ``re``, no ``dataclasses``.
"""

import os

from dockyard.gostrconv import go_quote

# typing/collections.abc cost milliseconds at start-up; only type checkers need them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Flag",
    "FlagError",
    "HelpRequested",
    "flag_error_text",
    "flag_usages",
    "go_quote",
    "parse",
    "parse_go_bool",
    "parse_go_int",
    "usage_text",
]

KINDS = ("bool", "string", "int", "list", "csv", "map")

# The type name pflag/docker print after a flag in --help (Value.Type()).
# "list" is docker's opts.ListOpts, "map" its opts.MapOpts, "strings" is
# pflag's StringSlice (the "csv" kind).
_TYPE_NAMES = {
    "bool": "",
    "string": "string",
    "int": "int",
    "list": "list",
    "csv": "strings",
    "map": "map",
}


class FlagError(Exception):
    """A command-line error, worded exactly as pflag words it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HelpRequested(Exception):
    """``-h``/``--help`` was given; the caller prints usage and exits 0.

    ``shorthand`` is true when ``-h`` was used: docker marks that shorthand
    deprecated and prints "Flag shorthand -h has been deprecated, use --help"
    to stdout before the usage.
    """

    def __init__(self, shorthand: bool = False) -> None:
        super().__init__("help requested")
        self.shorthand = shorthand


class Flag:
    """One flag definition. A plain class with __slots__ (cheaper to import than a dataclass)."""

    __slots__ = ("convert", "default", "help", "hidden", "kind", "long", "metavar", "short")

    def __init__(
        self,
        long: str,
        short: str | None = None,
        kind: str = "bool",
        default: object = None,
        help: str = "",
        metavar: str | None = None,
        hidden: bool = False,
        convert: "Callable[[str], object] | None" = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown flag kind {kind!r}")
        if short is not None and len(short) != 1:
            raise ValueError(f"shorthand {short!r} must be a single character")
        self.long = long
        self.short = short
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar
        self.hidden = hidden
        # Optional per-value converter (like a custom pflag.Value.Set): a ValueError
        # it raises becomes pflag's 'invalid argument "v" for "--x" flag: <msg>'.
        self.convert = convert

    def __repr__(self) -> str:
        return f"Flag({self.long!r}, {self.short!r}, {self.kind!r})"

    def initial(self) -> object:
        """Fresh default value (copied so repeated parses never share a list/dict)."""
        d = self.default
        if d is None:
            return {"bool": False, "string": "", "int": 0, "map": {}}.get(self.kind, [])
        if isinstance(d, list):
            return list(d)
        if isinstance(d, dict):
            return dict(d)
        return d

    def display_name(self) -> str:
        """Name used in 'invalid argument' errors: "-n, --last" or "--last"."""
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


# ----------------------------------------------------------------------------
# Go strconv re-implementations (exact error wording matters: users see it).


def parse_go_bool(s: str) -> bool:
    """strconv.ParseBool."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(s)}: invalid syntax")


def _underscore_ok(s: str) -> bool:
    """strconv.underscoreOK: '_' only between digits (or after a base prefix)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def parse_go_int(s: str, bits: int = 64) -> int:
    """strconv.ParseInt(s, 0, bits): Go literal prefixes (0x, 0o, 0b, leading-0 octal), '_'."""

    def err(why: str) -> ValueError:
        return ValueError(f"strconv.ParseInt: parsing {go_quote(s)}: {why}")

    body, neg = s, False
    if body[:1] in ("+", "-"):
        neg, body = body[0] == "-", body[1:]
    if not body:
        raise err("invalid syntax")
    base = 10
    if body[0] == "0":
        p = body[1:2].lower()
        if len(body) >= 3 and p in ("b", "o", "x"):
            base, body = {"b": 2, "o": 8, "x": 16}[p], body[2:]
        else:
            base, body = 8, body[1:]
    limit = 1 << (bits - 1)
    cutoff = (1 << 64) // base + 1  # ParseUint detects overflow before the syntax error
    n, underscores = 0, False
    for c in body:
        if c == "_":
            underscores = True
            continue
        lc = c.lower()
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif "a" <= lc <= "z":
            d = ord(lc) - 87
        else:
            raise err("invalid syntax")
        if d >= base:
            raise err("invalid syntax")
        if n >= cutoff:
            raise err("value out of range")
        n = n * base + d
        if n >= 1 << 64:
            raise err("value out of range")
    if underscores and not _underscore_ok(s):
        raise err("invalid syntax")
    if (not neg and n >= limit) or (neg and n > limit):
        raise err("value out of range")
    return -n if neg else n


# ----------------------------------------------------------------------------
# Parsing


def _split_csv(value: str) -> list[str]:
    """One CSV record, as pflag's StringSlice reads it with encoding/csv.

    The stdlib csv module imports ``re``; this tiny reader handles the
    quoting docker users actually type ("a,b", '"a,b",c').
    """
    if value == "":
        return []
    out: list[str] = []
    cur: list[str] = []
    i, n = 0, len(value)
    while True:
        if i < n and value[i] == '"':  # quoted field: "" is an escaped quote
            i += 1
            while i < n:
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        cur.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                cur.append(value[i])
                i += 1
        while i < n and value[i] != ",":
            cur.append(value[i])
            i += 1
        out.append("".join(cur))
        cur = []
        if i >= n:
            return out
        i += 1  # skip the comma; a trailing comma yields a final empty field


def _set(flag: Flag, value: str, values: dict[str, object], changed: set[str]) -> None:
    """pflag FlagSet.Set: convert and store, wrapping errors as InvalidValueError."""
    kind = flag.kind
    conv = flag.convert
    try:
        if kind == "bool":
            v: object = parse_go_bool(value)
        elif kind == "int":
            v = parse_go_int(value)
        elif kind == "csv":
            v = [conv(x) for x in _split_csv(value)] if conv else _split_csv(value)
        elif kind == "map":
            key, _, val = value.partition("=")  # docker MapOpts: "KEY" alone maps to ""
            v = (key, conv(val) if conv else val)
        else:
            v = conv(value) if conv else value
    except ValueError as e:
        raise FlagError(
            f"invalid argument {go_quote(value)} for {go_quote(flag.display_name())} flag: {e}"
        ) from None
    first = flag.long not in changed
    changed.add(flag.long)
    # pflag slices/maps: the first Set replaces the default, later ones add to it.
    if kind == "list":
        v = [v]
    if kind in ("list", "csv"):
        if first:
            values[flag.long] = v
        else:
            values[flag.long].extend(v)  # type: ignore[attr-defined]
    elif kind == "map":
        if first:
            values[flag.long] = {}
        values[flag.long][v[0]] = v[1]  # type: ignore[index]
    else:
        values[flag.long] = v


def parse(
    flags: list[Flag], argv: list[str], *, interspersed: bool = True
) -> tuple[dict[str, object], list[str]]:
    """Parse argv like pflag's FlagSet.Parse; return (values by long name, positionals).

    Raises FlagError for bad input and HelpRequested for -h/--help (after the
    whole command line parsed cleanly, like cobra).
    """
    longs: dict[str, Flag] = {}
    shorts: dict[str, Flag] = {}
    for f in flags:
        longs[f.long] = f
        if f.short:
            shorts[f.short] = f
    # cobra adds a hidden bool "help" flag whose -h shorthand docker deprecates.
    # Its display name stays "--help" (deprecated shorthands are not shown).
    builtin_help = "help" not in longs
    help_flag = longs.setdefault("help", Flag("help", None, "bool", hidden=True))
    if builtin_help:
        shorts.setdefault("h", help_flag)
    values: dict[str, object] = {f.long: f.initial() for f in longs.values()}
    changed: set[str] = set()
    positionals: list[str] = []
    help_short = False

    i, n = 0, len(argv)
    while i < n:
        s = argv[i]
        i += 1
        if len(s) < 2 or s[0] != "-":  # "", "-", and non-flags are positionals
            positionals.append(s)
            if not interspersed:
                positionals.extend(argv[i:])
                break
            continue
        if s[1] == "-":
            if len(s) == 2:  # "--" terminates the flags
                positionals.extend(argv[i:])
                break
            name = s[2:]
            if name[0] in "-=":
                raise FlagError(f"bad flag syntax: {s}")
            name, eq, value = name.partition("=")
            flag = longs.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            if not eq:
                if flag.kind == "bool":  # NoOptDefVal "true"
                    value = "true"
                elif i < n:
                    value = argv[i]
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: --{name}")
            _set(flag, value, values, changed)
            continue
        # A group of shorthands: "-abc", "-fvalue", "-f=value", "-f value".
        shorthands = s[1:]
        while shorthands:
            c = shorthands[0]
            flag = shorts.get(c)
            if flag is None:
                raise FlagError(f"unknown shorthand flag: {_go_rune_quote(c)} in -{shorthands}")
            if len(shorthands) > 2 and shorthands[1] == "=":
                value, shorthands = shorthands[2:], ""
            elif flag.kind == "bool":
                value, shorthands = "true", shorthands[1:]
            elif len(shorthands) > 1:
                value, shorthands = shorthands[1:], ""
            elif i < n:
                value, shorthands = argv[i], ""
                i += 1
            else:
                raise FlagError(f"flag needs an argument: {_go_rune_quote(c)} in -{shorthands}")
            if flag is help_flag:
                help_short = True  # docker then prints the -h deprecation notice
            _set(flag, value, values, changed)

    if builtin_help and values.pop("help"):
        raise HelpRequested(shorthand=help_short)
    return values, positionals


def _go_rune_quote(c: str) -> str:
    """strconv.QuoteRune for the %q of a shorthand character."""
    if c == "'":
        return "'\\''"
    q = go_quote(c)[1:-1]
    return "'" + ('"' if q == '\\"' else q) + "'"


# ----------------------------------------------------------------------------
# Help text (docker's cobra usage template + pflag FlagUsagesWrapped)


def _unquote_usage(flag: Flag) -> tuple[str, str]:
    """pflag UnquoteUsage: a `name` in backquotes in the help names the value."""
    usage = flag.help
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end > start:
            name = usage[start + 1 : end]
            return name, usage[:start] + name + usage[end + 1 :]
    if flag.metavar is not None:
        return flag.metavar, usage
    return _TYPE_NAMES[flag.kind], usage


def _default_text(flag: Flag, varname: str) -> str:
    """The " (default X)" suffix pflag adds when the default is not the zero value."""
    d = flag.default
    kind = flag.kind
    if kind == "map":  # docker's MapOpts always shows its default, even empty
        body = " ".join(f"{k}:{v}" for k, v in sorted((d or {}).items()))
        return f" (default map[{body}])"
    if not d:  # None, False, "", 0, [] are pflag's zero values
        return ""
    if isinstance(d, list):
        # docker ListOpts prints like %v ("[a b]"); pflag StringSlice as CSV ("[a,b]").
        return f" (default [{(',' if kind == 'csv' else ' ').join(str(x) for x in d)}])"
    if d is True:
        return " (default true)"
    if varname == "string":
        return f" (default {go_quote(str(d))})"
    return f" (default {d})"


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    """pflag wrapN: split s on whitespace into a <= i (+slop) prefix and the rest."""
    if i + slop > len(s):
        return s, ""
    head = s[:i]
    w = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
    if w <= 0:
        return s, ""
    nl = head.rfind("\n")
    if 0 < nl < w:
        return s[:nl], s[nl + 1 :]
    return s[:w], s[w + 1 :]


def _wrap(i: int, w: int, s: str) -> str:
    """pflag wrap: wrap s to width w, continuation lines indented by i."""
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    width = w - i
    r = ""
    if width < 24:  # not enough room: start the text on its own indented line
        i = 16
        width = w - i
        r += "\n" + " " * i
    if width < 24:
        return s.replace("\n", r)
    slop = 5
    width -= slop
    line, s = _wrap_n(width, slop, s)
    r += line.replace("\n", "\n" + " " * i)
    while s:
        line, s = _wrap_n(width, slop, s)
        r += "\n" + " " * i + line.replace("\n", "\n" + " " * i)
    return r


def flag_usages(flags: list[Flag], cols: int = 0) -> str:
    """pflag FlagUsagesWrapped: the aligned option lines, sorted by long name."""
    lines: list[str] = []
    maxlen = 0
    for flag in sorted(flags, key=lambda f: f.long):
        if flag.hidden:
            continue
        line = f"  -{flag.short}, --{flag.long}" if flag.short else f"      --{flag.long}"
        varname, usage = _unquote_usage(flag)
        if varname:
            line += " " + varname
        line += "\x00"
        maxlen = max(maxlen, len(line))
        lines.append(line + usage + _default_text(flag, varname))
    out = []
    for line in lines:
        sidx = line.index("\x00")
        # Go's Fprintln puts a space between its three operands.
        out.append(
            f"{line[:sidx]} {' ' * (maxlen - sidx)} {_wrap(maxlen + 2, cols, line[sidx + 1 :])}\n"
        )
    return "".join(out)


def _terminal_width() -> int:
    """docker measures the terminal on stdin (fd 0) and defaults to 80 columns."""
    try:
        return os.get_terminal_size(0).columns or 80
    except OSError:
        return 80


def usage_text(
    command_path: str,
    usage: str,
    description: str,
    flags: list[Flag],
    *,
    aliases: list[str] | None = None,
    examples: str | None = None,
    subcommands: list[tuple[str, str]] | None = None,
    width: int | None = None,
) -> str:
    """Render ``docker CMD --help`` as docker's cobra usage template does.

    ``usage`` is what follows the command path on the Usage line, e.g.
    ``usage_text("docker images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", ...)``
    gives "Usage:  docker images [OPTIONS] [REPOSITORY[:TAG]]". ``aliases`` are
    full command paths ("docker image ls"). With ``subcommands`` (name,
    short description) the command renders as a management command
    ("Usage:  docker image COMMAND").
    """
    cols = (width if width is not None else _terminal_width()) - 1
    if subcommands:
        has_flags = any(not f.hidden for f in flags)
        use_line = command_path + (" [OPTIONS]" if has_flags else "") + " COMMAND"
    else:
        use_line = f"{command_path} {usage}" if usage else command_path
    parts = [f"Usage:  {use_line}\n\n{description.strip()}\n"]
    if aliases:
        parts.append("\nAliases:\n  " + ", ".join(aliases) + "\n")
    if examples:
        parts.append(f"\nExamples:\n{examples}\n")
    visible = [f for f in flags if not f.hidden]
    if visible:
        parts.append("\nOptions:\n" + flag_usages(visible, cols).rstrip() + "\n")
    if subcommands:
        # cobra's NamePadding: at least 11, else the longest sibling name.
        pad = max([11] + [len(name) for name, _ in subcommands])
        parts.append("\nCommands:\n")
        parts.extend(f"  {name.ljust(pad)} {short}\n" for name, short in subcommands)
        parts.append(f"\nRun '{command_path} COMMAND --help' for more information on a command.\n")
    return "".join(parts)


def flag_error_text(message: str, command_path: str, usage: str) -> str:
    """docker's FlagErrorFunc text (printed to stderr, exit status 125)."""
    use_line = f"{command_path} {usage}" if usage else command_path
    return f"{message}\n\nUsage:  {use_line}\n\nRun '{command_path} --help' for more information"
