"""Go value semantics for gotemplate: fmt printing and encoding/json.

Scripts parse docker's formatted output, so this reproduces Go's output
byte for byte where users can see it: ``fmt.Sprint``/``Sprintf`` (``%v`` of
a float switches to exponent form at 1e+06, maps print as ``map[k:v]``,
bad verbs as ``%!d(string=x)``) and ``json.Marshal`` (shortest floats,
``\\u2028`` and optional ``\\u003c`` escapes). Python values stand for Go's:
dict = map, list = slice, None = nil, plus the MISSING "no value" sentinel.
"""

from dockyard.cli.flags import go_quote


class TemplateError(Exception):
    """A template parse or execution error, worded like Go's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.partial = ""  # output written before an execution error (Go streams it)


class FuncError(Exception):
    """Raised by a template function; reported as 'error calling NAME: <msg>'."""


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _Sentinel("MISSING")  # Go's invalid reflect.Value: a missing map key; prints "<no value>"
NOARG = _Sentinel("NOARG")  # no value piped into a command (Go's missingVal)


class GoStruct(dict):
    """A dict that behaves like a Go struct in templates.

    With ``type_name`` (e.g. "*formatter.imageContext"), a missing field is an
    error "can't evaluate field X in type T" instead of "<no value>"; values
    that are callables act as methods (``{{.Label "key"}}``). With
    ``escape_html``, ``{{json .}}`` escapes <, >, & as docker's row contexts
    do (they implement MarshalJSON with json.Marshal).
    """

    __slots__ = ("escape_html", "type_name")

    def __init__(
        self, *args: object, type_name: str | None = None, escape_html: bool = False
    ) -> None:
        super().__init__(*args)
        self.type_name = type_name
        self.escape_html = escape_html


# ----------------------------------------------------------------------------
# Go strings are bytes. Invalid UTF-8 (from "\xff" literals or byte-wise
# truncate/slice) round-trips through Python str as surrogate escapes; the CLI
# writes output with errors="surrogateescape" to emit the original bytes.


def go_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def go_str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# ----------------------------------------------------------------------------
# Types, truth, printing


def go_type(v: object) -> str:
    """The Go type docker's data would have, for error messages and %T."""
    if isinstance(v, GoStruct) and v.type_name:
        return v.type_name
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "[]string" if v and all(isinstance(x, str) for x in v) else "[]interface {}"
    if isinstance(v, dict):
        strs = v and all(isinstance(x, str) for x in v.values())
        return "map[string]string" if strs else "map[string]interface {}"
    if v is None or v is MISSING:
        return "<nil>"
    return type(v).__name__


GO_TYPES = {"string": "string", "int": "int", "bool": "bool"}


def has_type(v: object, typ: str) -> bool:
    if typ == "string":
        return isinstance(v, str)
    if typ == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, bool)


def truth(v: object) -> bool:
    """text/template isTrue: empty/zero/nil is false; structs are always true."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, GoStruct) and v.type_name:
        return True
    if isinstance(v, (str, list, tuple, dict, bool, int, float)):
        return bool(v)
    return True


def sorted_keys(d: dict) -> list:
    """Go's fmtsort order for map keys (fmt printing and range)."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=lambda k: (type(k).__name__, str(k)))


def _digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of abs(f) > 0 and the decimal point
    position: abs(f) == 0.DIGITS * 10**dp (what strconv's shortest mode computes)."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    raw = ip + fp
    stripped = raw.lstrip("0")
    dp = len(ip) + int(exp or 0) - (len(raw) - len(stripped))
    return stripped.rstrip("0"), dp


def _float_e(digits: str, dp: int, neg: bool, upper: bool = False) -> str:
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = dp - 1
    e = "E" if upper else "e"
    return f"{'-' if neg else ''}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _float_f(digits: str, dp: int, neg: bool) -> str:
    if dp <= 0:
        body = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        body = digits + "0" * (dp - len(digits))
    else:
        body = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + body


def _special(f: float) -> str | None:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    return None


def go_float(f: float, upper: bool = False) -> str:
    """fmt's %v (and precision-less %g) for float64: shortest digits, exponent
    form when the exponent is < -4 or >= 6, so 1e6 prints "1e+06" and 123456.5
    prints as is (Go's strconv uses precision 6 for that choice in shortest mode)."""
    s = _special(f)
    if s is not None:
        return s
    neg = f < 0 or (f == 0 and str(f).startswith("-"))
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _digits(f)
    exp = dp - 1
    if exp < -4 or exp >= 6:
        return _float_e(digits, dp, neg, upper)
    return _float_f(digits, dp, neg)


def go_v(v: object) -> str:
    """fmt's %v of one value (slices as [a b], maps as map[k:v] in key order)."""
    if v is MISSING or v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, (list, tuple, dict)):
        return _fmt_one("v", "", None, None, v)
    return str(v)


def go_sprint(*args: object) -> str:
    """fmt.Sprint: spaces between operands only when neither side is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(a if isinstance(a, str) else go_v(a))
    return "".join(out)


def go_sprintln(*args: object) -> str:
    return " ".join(a if isinstance(a, str) else go_v(a) for a in args) + "\n"


def go_rune_u(c: str) -> str:
    """fmt's %#U: U+0023 '#'."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


# ----------------------------------------------------------------------------
# fmt.Sprintf


def _pad(s: str, flags: str, width: int | None) -> str:
    if width is None or len(s) >= width:
        return s
    return s.ljust(width) if "-" in flags else s.rjust(width)


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, arg: object) -> str:
    if verb == "T":
        return _pad(go_type(arg), flags, width)
    if arg is None or arg is MISSING:
        return _pad("<nil>", flags, width) if verb == "v" else f"%!{verb}(<nil>)"
    # Containers apply the verb to each element: %q of []string is ["a" "b"].
    if isinstance(arg, (list, tuple)):
        return "[" + " ".join(_fmt_one(verb, flags, width, prec, x) for x in arg) + "]"
    if isinstance(arg, GoStruct) and arg.type_name:  # a struct prints its field values
        return "{" + " ".join(_fmt_one(verb, flags, width, prec, x) for x in arg.values()) + "}"
    if isinstance(arg, dict):
        one = _fmt_one
        pairs = (
            f"{one(verb, flags, width, prec, k)}:{one(verb, flags, width, prec, arg[k])}"
            for k in sorted_keys(arg)
        )
        return "map[" + " ".join(pairs) + "]"
    if verb == "v":
        flags = flags.replace("+", "").replace("#", "")  # %+v / %#v change struct printing only
    spec = (
        "%" + flags + ("" if width is None else str(width)) + ("" if prec is None else f".{prec}")
    )
    if isinstance(arg, bool):
        if verb in "vt":
            return _pad("true" if arg else "false", flags, width)
    elif isinstance(arg, int):
        if verb in "vd":
            return (spec + "d") % arg
        if verb in "xXoc":
            if verb == "o" and "#" in flags:
                return _pad(("-0" if arg < 0 else "0") + format(abs(arg), "o"), flags, width)
            return (spec + verb) % arg if verb != "c" else _pad(chr(arg), flags, width)
        if verb == "b":
            return _pad(format(arg, "b"), flags, width)
        if verb == "q":
            return _pad("'" + go_quote(chr(arg))[1:-1].replace("'", "\\'") + "'", flags, width)
        if verb == "U":
            return _pad(f"U+{arg:04X}", flags, width)
    elif isinstance(arg, float):
        if verb in "eEfFgG" and _special(arg) is not None:
            return _pad(_special(arg), flags, width)  # type: ignore[arg-type]
        if verb in "eEfF" or (verb in "gG" and prec is not None):
            return (spec + verb) % arg
        if verb == "v" and prec is not None:
            return (spec + "g") % arg
        if verb in "vgG":
            s = go_float(arg, upper=verb == "G")
            if "+" in flags and not s.startswith("-"):
                s = "+" + s
            return _pad(s, flags, width)
    elif isinstance(arg, str):
        if verb in "vs":
            return _pad(arg if prec is None else arg[:prec], flags, width)
        if verb == "q":
            return _pad(go_quote(arg), flags, width)
        if verb in "xX":
            h = go_bytes(arg).hex(" ") if " " in flags else go_bytes(arg).hex()
            return _pad(h.upper() if verb == "X" else h, flags, width)
    elif verb == "v":
        return _pad(str(arg), flags, width)
    return f"%!{verb}({go_type(arg)}={go_v(arg)})"


def go_sprintf(fmt: str, *args: object) -> str:
    """fmt.Sprintf for the verbs templates use, with Go's %!verb(...) error forms."""
    out: list[str] = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width = prec = None
        start = i
        while i < n and fmt[i].isdigit():
            i += 1
        if i > start:
            width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            prec = int(fmt[start:i] or 0)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_fmt_one(verb, flags, width, prec, args[argi]))
            argi += 1
    if argi < len(args):
        extra = (
            "<nil>" if a is None or a is MISSING else f"{go_type(a)}={go_v(a)}" for a in args[argi:]
        )
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)


# ----------------------------------------------------------------------------
# encoding/json


_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_ESC.update({"\b": "\\b", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_HTML_ESC = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _json_str(s: str, escape_html: bool) -> str:
    out = ['"']
    for ch in s:
        if ch in _JSON_ESC:
            out.append(_JSON_ESC[ch])
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif escape_html and ch in _HTML_ESC:
            out.append(_HTML_ESC[ch])
        elif "\ud800" <= ch <= "\udfff":  # lone surrogate: Go writes invalid UTF-8 as U+FFFD
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    special = _special(f)
    if special is not None:
        raise FuncError(f"json: unsupported value: {special}")
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    digits, dp = _digits(f)
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        s = _float_e(digits, dp, f < 0)
        return s[:-2] + s[-1] if s[-4:-1] in ("e-0", "e+0") else s  # e-07 -> e-7
    return _float_f(digits, dp, f < 0)


def go_json(v: object, escape_html: bool = False) -> str:
    """json.Marshal (compact). Dicts keep their order: API data is already in
    struct order, and docker's maps arrive sorted."""
    if isinstance(v, GoStruct) and v.escape_html:
        escape_html = True
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_str(v, escape_html)
    if isinstance(v, dict):
        items = (
            f"{_json_str(str(k), escape_html)}:{go_json(x, escape_html)}" for k, x in v.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(go_json(x, escape_html) for x in v) + "]"
    return _json_str(str(v), escape_html)
