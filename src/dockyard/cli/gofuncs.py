"""text/template's builtin functions and docker's template functions.

Each entry of BUILTINS records the Go signature (parameter types) because the
executor checks argument counts and types and reports mismatches in Go's
words ("wrong number of args for upper: want 1 got 0"). Errors raised inside
a function (FuncError) become "error calling NAME: ...".
"""

from dockyard.cli.gofmt import (
    MISSING,
    FuncError,
    go_bytes,
    go_json,
    go_sprint,
    go_sprintf,
    go_sprintln,
    go_str,
    go_type,
    go_v,
    truth,
)

__all__ = ["BUILTINS", "HEADER_FUNCS", "signature"]


def f_and(*args: object) -> object:  # evaluated lazily by the executor
    return args[-1]


def f_or(*args: object) -> object:  # evaluated lazily by the executor
    return args[-1]


def _kind(v: object) -> str | None:
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(v, t):
            return name
    return None


def f_eq(a: object, *others: object) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    ka = _kind(a)
    for b in others:
        kb = _kind(b)
        nil_a, nil_b = a is None or a is MISSING, b is None or b is MISSING
        if ka != kb:
            if not nil_a and not nil_b:
                raise FuncError("incompatible types for comparison")
        elif ka is None:
            if nil_a or nil_b:
                if nil_a and nil_b:
                    return True
                continue
            raise FuncError(f"non-comparable type {go_v(b)}: {go_type(b)}")
        elif a == b:
            return True
    return False


def f_lt(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka is None or kb is None:
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    if ka == "bool":
        raise FuncError("invalid type for comparison")
    return a < b  # type: ignore[operator]


def f_le(a: object, b: object) -> bool:
    return f_lt(a, b) or f_eq(a, b)


def _zero(d: dict) -> object:
    # The zero value of a missing key: "" for string maps (labels, options),
    # nil otherwise. Python dicts carry no element type, so infer it.
    return "" if all(isinstance(x, str) for x in d.values()) else None


def _index_arg(x: object, cap: int) -> int:
    if x is None or x is MISSING:
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(x, int) or isinstance(x, bool):
        raise FuncError(f"cannot index slice/array with type {go_type(x)}")
    if x < 0 or x > cap:
        raise FuncError(f"index out of range: {x}")
    return x


def f_index(item: object, *indexes: object) -> object:
    if item is None or item is MISSING:
        raise FuncError("index of untyped nil")
    for x in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, (str, list, tuple)):
            seq = go_bytes(item) if isinstance(item, str) else item
            i = _index_arg(x, len(seq))
            if i == len(seq):
                kind = "string" if isinstance(item, str) else "slice"
                raise FuncError(f"reflect: {kind} index out of range")
            item = seq[i]
        elif isinstance(item, dict):
            if x is None or x is MISSING:
                raise FuncError("value is nil; should be of type string")
            item = item[x] if x in item else _zero(item)  # type: ignore[index]
        else:
            raise FuncError(f"can't index item of type {go_type(item)}")
    return item


def f_slice(item: object, *indexes: object) -> object:
    if item is None or item is MISSING:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: object = go_bytes(item)
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise FuncError(f"can't slice item of type {go_type(item)}")
    idx = [0, len(seq), len(seq)]  # type: ignore[arg-type]
    for k, x in enumerate(indexes):
        idx[k] = _index_arg(x, len(seq))  # type: ignore[arg-type]
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0] : idx[1]]  # type: ignore[index]
    return go_str(out) if isinstance(out, bytes) else out


def f_len(item: object) -> int:
    if item is None or item is MISSING:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(go_bytes(item))  # Go's len counts bytes
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise FuncError(f"len of type {go_type(item)}")


def _args_str(args: tuple) -> str:
    """text/template evalArgs: a lone string as is, else fmt.Sprint."""
    return args[0] if len(args) == 1 and isinstance(args[0], str) else go_sprint(*args)


def f_html(*args: object) -> str:
    s = _args_str(args)
    for a, b in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;")):
        s = s.replace(a, b)
    return s.replace("\0", "\ufffd")


def f_urlquery(*args: object) -> str:
    safe = "-_.~"
    out = []
    for b in go_bytes(_args_str(args)):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in safe):
            out.append(c)
        else:
            out.append("+" if c == " " else f"%{b:02X}")
    return "".join(out)


def f_js(*args: object) -> str:
    out = []
    for c in _args_str(args):
        if c in "\\'\"":
            out.append("\\" + c)
        elif c in "<>&=" or c < " " or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def f_json(v: object) -> str:
    return go_json(v)


def f_split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


def f_join(elems: object, sep: str) -> str:
    if elems is None or elems is MISSING:
        return ""
    if isinstance(elems, (list, tuple)):
        return sep.join(go_sprint(x) for x in elems)
    if isinstance(elems, dict):
        return sep.join(sorted(go_sprint(x) for x in elems.values()))
    raise FuncError(f"expected slice, got {go_type(elems)}")


def f_title(s: str) -> str:
    """strings.Title: upper-case letters that follow a separator."""
    out, prev = [], " "
    for c in s:
        sep = (not (prev.isalnum() or prev == "_")) if prev.isascii() else prev.isspace()
        out.append(c.title() if sep and len(c.title()) == 1 else c)
        prev = c
    return "".join(out)


def _map_runes(s: str, upper: bool) -> str:
    # Go maps rune by rune, so "ß" stays "ß" where Python would give "SS".
    conv = [c.upper() if upper else c.lower() for c in s]
    return "".join(m if len(m) == 1 else c for m, c in zip(conv, s, strict=True))


def f_pad(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    if prefix < 0 or suffix < 0:
        raise FuncError("strings: negative Repeat count")
    return " " * prefix + s + " " * suffix


def f_truncate(s: str, length: int) -> str:
    b = go_bytes(s)
    if len(b) < length:
        return s
    if length < 0:
        raise FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return go_str(b[:length])  # Go cuts bytes, not runes


def _identity(v: str, *_: object) -> str:
    return v


# name -> (function, fixed parameter types, variadic element type or None)
BUILTINS: dict[str, object] = {
    "and": (f_and, ("any",), "any"),
    "or": (f_or, ("any",), "any"),
    "not": (lambda v: not truth(v), ("any",), None),
    "len": (f_len, ("any",), None),
    "index": (f_index, ("any",), "any"),
    "slice": (f_slice, ("any",), "any"),
    "print": (go_sprint, (), "any"),
    "printf": (go_sprintf, ("string",), "any"),
    "println": (go_sprintln, (), "any"),
    "eq": (f_eq, ("any",), "any"),
    "ne": (lambda a, b: not f_eq(a, b), ("any", "any"), None),
    "lt": (f_lt, ("any", "any"), None),
    "le": (f_le, ("any", "any"), None),
    "gt": (lambda a, b: not f_le(a, b), ("any", "any"), None),
    "ge": (lambda a, b: not f_lt(a, b), ("any", "any"), None),
    "html": (f_html, (), "any"),
    "js": (f_js, (), "any"),
    "urlquery": (f_urlquery, (), "any"),
    # docker/cli templates.basicFunctions
    "json": (f_json, ("any",), None),
    "split": (f_split, ("string", "string"), None),
    "join": (f_join, ("any", "string"), None),
    "title": (f_title, ("string",), None),
    "lower": (lambda s: _map_runes(s, False), ("string",), None),
    "upper": (lambda s: _map_runes(s, True), ("string",), None),
    "pad": (f_pad, ("string", "int", "int"), None),
    "truncate": (f_truncate, ("string", "int"), None),
}

# docker's HeaderFunctions: table headers must stay intact, so these echo their input.
HEADER_FUNCS: dict[str, object] = {
    "json": (_identity, ("string",), None),
    "split": (_identity, ("string", "string"), None),
    "join": (_identity, ("string", "string"), None),
    "title": (_identity, ("string",), None),
    "lower": (_identity, ("string",), None),
    "upper": (_identity, ("string",), None),
    "truncate": (_identity, ("string", "int"), None),
}


def signature(entry: object) -> tuple:
    """(function, params, variadic) for a registry entry; plain callables take any args."""
    return entry if isinstance(entry, tuple) else (entry, (), "any")  # type: ignore[return-value]
