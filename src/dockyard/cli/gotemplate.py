"""Go text/template, as docker's ``--format`` uses it, over Python data.

Scripts parse docker's formatted output, so output and error text follow Go
(text/template's exec.go, docker's formatter.Context) rather than Python
idiom. Data is plain dicts/lists/str/int/float/bool/None; a dict is a Go map
(a missing key prints "<no value>") unless it is a GoStruct with a type name,
whose missing fields are errors as on docker's context structs. The lexer and
parser live in goparse, Go value printing in gofmt, functions in gofuncs.
None of them imports ``re``: every table the CLI prints goes through here.
"""

from dockyard.cli import gofmt as _f
from dockyard.cli.flags import go_quote
from dockyard.cli.gofmt import MISSING, GoStruct, TemplateError, go_bytes, go_json, go_sprint
from dockyard.cli.gofuncs import BUILTINS, HEADER_FUNCS, signature
from dockyard.cli.goparse import Parser, node_str
from dockyard.cli.tabwriter import tabulate

__all__ = [
    "MISSING",
    "GoStruct",
    "Template",
    "TemplateError",
    "execute",
    "go_json",
    "go_sprint",
    "parse",
    "render_items",
]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Template:
    """A parsed template: ``Template(text).execute(data)``."""

    def __init__(self, text: str, funcs: dict[str, object] | None = None, name: str = "") -> None:
        self.text = text
        self.name = name
        self.funcs = {**BUILTINS, **(funcs or {})}
        parser = Parser(text, self.funcs, name)
        self.root = parser.parse()
        self.defs = parser.defs

    def execute(
        self, data: object, *, funcs: dict[str, object] | None = None, missingkey: str = "default"
    ) -> str:
        """Run the template; raises TemplateError (with ``.partial`` output) on failure."""
        st = _State(self, {**self.funcs, **(funcs or {})}, missingkey)
        st.vars = [("$", data)]
        try:
            try:
                st.walk_list(data, self.root)
            except RecursionError:  # Go stops runaway {{template}} recursion at this depth
                st.node = None
                raise st.errorf("exceeded maximum template depth (100000)") from None
        except TemplateError as e:
            e.partial = "".join(st.out)
            raise
        return "".join(st.out)


class _State:
    def __init__(self, tmpl: Template, funcs: dict[str, object], missingkey: str) -> None:
        self.tmpl, self.funcs, self.missingkey = tmpl, funcs, missingkey
        self.out: list[str] = []
        self.vars: list[tuple[str, object]] = []
        self.node: list | None = None
        self.executing = tmpl.name  # name of the (sub)template being run, for errors

    def errorf(self, msg: str) -> TemplateError:
        text, node, name = self.tmpl.text, self.node, self.tmpl.name
        if node is None:
            return TemplateError(f"template: {name}: {msg}")
        prefix = go_bytes(text[: node[1]])  # Go counts columns in bytes
        line = prefix.count(b"\n") + 1
        col = len(prefix) - (prefix.rfind(b"\n") + 1) if line > 1 else len(prefix)
        where = f"{name}:{line}:{col}"
        return TemplateError(
            f"template: {where}: executing {go_quote(self.executing)} at <{node_str(node)}>: {msg}"
        )

    def walk_list(self, dot: object, nodes: list) -> None:
        for node in nodes:
            self.walk(dot, node)

    def walk(self, dot: object, node: list) -> None:
        kind = node[0]
        if kind == "text":
            self.out.append(node[2])
        elif kind == "action":
            val = self.pipeline(dot, node[2])
            if not node[2][2]:
                self.node = node[2]
                self.out.append("<no value>" if val is MISSING else go_sprint(val))
        elif kind in ("if", "with"):
            mark = len(self.vars)
            val = self.pipeline(dot, node[2])
            if _f.truth(val):
                self.walk_list(val if kind == "with" else dot, node[3])
            elif node[4] is not None:
                self.walk_list(dot, node[4])
            del self.vars[mark:]
        elif kind == "range":
            self.walk_range(dot, node)
        elif kind == "break":
            raise _Break
        elif kind == "continue":
            raise _Continue
        elif kind == "template":
            body = self.tmpl.defs.get(node[2])
            if body is None:
                self.node = node
                raise self.errorf(f"template {go_quote(node[2])} not defined")
            val = MISSING if node[3] is None else self.pipeline(dot, node[3])
            saved = self.vars, self.executing
            self.vars, self.executing = [("$", val)], node[2]  # no dynamic scoping
            self.walk_list(val, body)
            self.vars, self.executing = saved

    def walk_range(self, dot: object, node: list) -> None:
        pipe = node[2]
        mark = len(self.vars)
        val = self.pipeline(dot, pipe)
        decls = pipe[2]
        if isinstance(val, (bool, str, float)):
            raise self.errorf(f"range can't iterate over {go_sprint(val)}")
        if isinstance(val, int):
            if len(decls) > 1:
                raise self.errorf(f"can't use {val} to iterate over more than one variable")
            pairs: list = [(i, i) for i in range(val)]
        elif isinstance(val, dict):
            pairs = [(k, val[k]) for k in _f.sorted_keys(val)]
        elif isinstance(val, (list, tuple)):
            pairs = list(enumerate(val))
        else:  # nil / missing: not an error, just empty
            pairs = []
        try:
            for index, elem in pairs:
                inner = len(self.vars)
                if decls:  # one variable gets the element; two get index and element
                    self._set_var(decls[-1], elem, pipe[3], 1)
                    if len(decls) > 1:
                        self._set_var(decls[0], index, pipe[3], 2)
                try:
                    self.walk_list(elem, node[3])
                except _Continue:
                    pass
                del self.vars[inner:]
        except _Break:
            pass
        if not pairs and node[4] is not None:
            self.walk_list(dot, node[4])
        del self.vars[mark:]

    def _set_var(self, name: str, value: object, is_assign: bool, top: int) -> None:
        if is_assign:
            self.assign(name, value)
        else:
            self.vars[-top] = (name, value)

    def assign(self, name: str, value: object) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> object:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise self.errorf(f"undefined variable: {name}")

    def pipeline(self, dot: object, pipe: list) -> object:
        self.node = pipe
        value: object = _f.NOARG
        for cmd in pipe[4]:
            value = self.command(dot, cmd, value)
            if value is None:  # Go digs nil interface{} values down to "no value"
                value = MISSING
        for name in pipe[2]:
            if pipe[3]:
                self.assign(name, value)
            else:
                self.vars.append((name, value))
        return value

    def not_a_function(self, args: list, final: object) -> None:
        if len(args) > 1 or final is not _f.NOARG:
            raise self.errorf(f"can't give argument to non-function {node_str(args[0])}")

    def command(self, dot: object, cmd: list, final: object) -> object:
        args = cmd[2]
        first = args[0]
        kind = first[0]
        if kind == "field":
            self.node = first
            return self.field_chain(dot, dot, first[2], args, final)
        if kind == "chain":
            self.node = first
            return self.field_chain(dot, self.arg(dot, "any", first[2]), first[3], args, final)
        if kind == "var":
            self.node = first
            val = self.var_value(first[2][0])
            if len(first[2]) == 1:
                self.not_a_function(args, final)
                return val
            return self.field_chain(dot, val, first[2][1:], args, final)
        if kind == "ident":
            self.node = first
            return self.call(dot, first[2], cmd, args, final)
        if kind == "pipe":
            self.not_a_function(args, final)
            return self.pipeline(dot, first)
        self.node = first
        self.not_a_function(args, final)
        if kind == "nil":
            raise self.errorf("nil is not a command")
        return _constant(first, dot)

    def field_chain(
        self, dot: object, recv: object, idents: list, args: list, final: object
    ) -> object:
        for name in idents[:-1]:
            recv = self.field(dot, name, recv, [None], _f.NOARG)
        return self.field(dot, idents[-1], recv, args, final)

    def field(self, dot: object, name: str, recv: object, args: list, final: object) -> object:
        if recv is MISSING:
            if self.missingkey == "error":
                raise self.errorf(f"nil data; no entry for key {go_quote(name)}")
            return MISSING
        if recv is None:
            raise self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = len(args) > 1 or final is not _f.NOARG
        if isinstance(recv, dict):
            struct = isinstance(recv, GoStruct) and recv.type_name
            if name in recv:
                val = recv[name]
                if callable(val):  # a method: it gets the arguments
                    argv = [self.arg(dot, "any", a) for a in args[1:]]
                    node = self.node
                    return self.invoke(
                        val, name, argv + ([] if final is _f.NOARG else [final]), node
                    )
                if has_args and struct:
                    raise self.errorf(f"{name} has arguments but cannot be invoked as function")
                if has_args:
                    raise self.errorf(f"{name} is not a method but has arguments")
                return val
            if struct:
                raise self.errorf(f"can't evaluate field {name} in type {recv.type_name}")
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            if self.missingkey == "error":
                raise self.errorf(f"map has no entry for key {go_quote(name)}")
            return None if self.missingkey == "zero" else MISSING
        raise self.errorf(f"can't evaluate field {name} in type {_f.go_type(recv)}")

    def invoke(self, fn: object, name: str, argv: list, node: list) -> object:
        try:
            return fn(*argv)  # type: ignore[operator]
        except (_f.FuncError, TypeError, ValueError) as e:
            self.node = node  # Go blames the whole command (or the method's field)
            raise self.errorf(f"error calling {name}: {e}") from None

    def call(self, dot: object, name: str, cmd: list, args: list, final: object) -> object:
        fn, params, variadic = signature(self.funcs[name])
        has_final = final is not _f.NOARG
        n_in = len(args) - 1 + has_final
        if variadic is not None:
            if n_in < len(params):
                want = len(params)
                raise self.errorf(
                    f"wrong number of args for {name}: want at least {want} got {len(args) - 1}"
                )
        elif n_in != len(params):
            raise self.errorf(f"wrong number of args for {name}: want {len(params)} got {n_in}")
        if name in ("and", "or") and self.funcs[name] is BUILTINS[name]:  # short-circuit
            val: object = MISSING
            for a in args[1:]:
                val = self.arg(dot, "any", a)
                if _f.truth(val) == (name == "or"):
                    return val
            return final if has_final else val
        types = [*params, *[variadic] * (n_in - len(params))]
        argv = [self.arg(dot, types[i], a) for i, a in enumerate(args[1:])]
        if has_final:
            argv.append(self.validate(final, types[n_in - 1]))
        return self.invoke(fn, name, argv, cmd)

    def arg(self, dot: object, typ: str, node: list) -> object:
        self.node = node
        kind = node[0]
        if kind == "dot":
            return self.validate(dot, typ)
        if kind == "nil":
            if typ in ("any", "list"):
                return None
            raise self.errorf(f"cannot assign nil to {typ}")
        if kind in ("field", "var", "chain", "ident"):
            cmd = ["cmd", node[1], [node]]
            return self.validate(self.command(dot, cmd, _f.NOARG), typ)
        if kind == "pipe":
            return self.validate(self.pipeline(dot, node), typ)
        if typ == "string":
            if kind != "str":
                raise self.errorf(f"expected string; found {node_str(node)}")
            return node[3]
        if typ == "int":
            if kind != "num" or node[3] is None:
                raise self.errorf(f"expected integer; found {node_str(node)}")
            return node[3]
        if typ == "bool":
            if kind != "bool":
                raise self.errorf(f"expected bool; found {node_str(node)}")
            return node[2]
        return _constant(node, dot)

    def validate(self, value: object, typ: str) -> object:
        if typ == "any":
            return None if value is MISSING else value
        if value is MISSING:
            raise self.errorf(f"invalid value; expected {_f.GO_TYPES[typ]}")
        if not _f.has_type(value, typ):
            got = "interface {}" if value is None else _f.go_type(value)
            raise self.errorf(f"wrong type for value; expected {_f.GO_TYPES[typ]}; got {got}")
        return value


def parse(text: str, funcs: dict[str, object] | None = None, name: str = "") -> Template:
    """Parse a Go template (docker's templates.Parse: basic + docker functions)."""
    return Template(text, funcs, name)


def execute(text: str, data: object, *, missingkey: str = "default") -> str:
    """Parse and execute ``text`` against ``data`` in one go."""
    return Template(text).execute(data, missingkey=missingkey)


# ----------------------------------------------------------------------------
# docker's formatter.Context


def _template_string(fmt: str) -> str:
    """formatter.Format.templateString: strip "table", trim spaces, expand \\t and \\n."""
    if fmt == "json":
        return "{{json .}}"
    if fmt.startswith("table"):
        fmt = fmt[5:]
    return fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def render_items(
    format: str,
    items: list[dict],
    headers: dict[str, str],
    *,
    default_table: str,
    type_name: str | None = None,
) -> str:
    """Render list output the way docker's formatter.Context.Write does.

    "" and "table" use ``default_table``; "table ..." prints a header row
    (the template run over ``headers`` with docker's HeaderFunctions) and
    aligns everything with the tabwriter; "json" prints ``{{json .}}`` per
    item; anything else is run per item, each followed by a newline. With
    ``type_name`` (e.g. "*formatter.imageContext") unknown fields are errors,
    as on docker's context structs; otherwise they print "<no value>".
    Errors are raised as TemplateError("template parsing error: ...").
    """
    if format in ("", "table"):
        format = default_table
    try:
        tmpl = Template(_template_string(format))
        buf: list[str] = []
        for item in items:
            # docker marshals its row contexts as sorted, HTML-escaped maps.
            ctx = GoStruct(sorted(item.items()), type_name=type_name, escape_html=True)
            buf.append(tmpl.execute(ctx))
            buf.append("\n")
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}") from None
    if not format.startswith("table"):
        return "".join(buf)
    try:
        header = tmpl.execute(headers, funcs=HEADER_FUNCS)
    except TemplateError as e:  # docker ignores header errors, keeping what was written
        header = e.partial
    return tabulate(header + "\n" + "".join(buf))


def _constant(node: list, dot: object) -> object:
    """exec.go idealConstant: a literal used as a value (command or interface{} arg)."""
    kind = node[0]
    if kind == "num":
        text = node[2]
        is_hex_int = (
            len(text) > 2 and text[0] == "0" and text[1] in "xX" and "p" not in text.lower()
        )
        if not is_hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
            return node[4]
        return node[3] if node[3] is not None else node[4]
    if kind == "str":
        return node[3]
    if kind == "bool":
        return node[2]
    return dot
