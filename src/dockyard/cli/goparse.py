"""Lexer and parser for Go text/template (text/template/parse, re-implemented).

Produces a small tree of lists ``[kind, pos, ...]`` that gotemplate executes.
Parse errors carry Go's exact text ("template: :1: unexpected EOF",
"function \"foo\" not defined") since users see them verbatim. Hand-written
scanning instead of ``re``: importing ``re`` costs ~7 ms, and every table
printed by the CLI goes through here.
"""

from dockyard.cli.flags import go_quote, parse_go_int
from dockyard.cli.gofmt import TemplateError, go_bytes, go_rune_u, go_str
from dockyard.units import parse_go_float

__all__ = ["Parser", "node_str"]

_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "nil", "range"}
_KEYWORDS |= {"template", "with"}
_SPACE = " \t\r\n"


def _scan_word(text: str, pos: int) -> int:
    """End of the identifier starting at pos (Go: letters, digits, '_')."""
    n = len(text)
    while pos < n and (text[pos].isalnum() or text[pos] == "_"):
        pos += 1
    return pos


def _scan_number(text: str, pos: int) -> int:
    """lex.go scanNumber: the longest run that could be a Go number literal."""
    n = len(text)

    def accept(chars: str) -> bool:
        nonlocal pos
        if pos < n and text[pos] in chars:
            pos += 1
            return True
        return False

    def run(chars: str) -> None:
        while accept(chars):
            pass

    accept("+-")
    digits = "0123456789_"
    if accept("0"):  # a leading 0 alone does not mean octal for floats
        if accept("xX"):
            digits = "0123456789abcdefABCDEF_"
        elif accept("oO"):
            digits = "01234567_"
        elif accept("bB"):
            digits = "01_"
    run(digits)
    if accept("."):
        run(digits)
    if len(digits) == 11 and accept("eE"):  # decimal exponent
        accept("+-")
        run("0123456789_")
    if len(digits) == 23 and accept("pP"):  # hexadecimal exponent
        accept("+-")
        run("0123456789_")
    accept("i")
    return pos


# ----------------------------------------------------------------------------
# Lexer (text/template/parse/lex.go). Tokens are (type, value, pos, line).


def _lex(text: str) -> list[tuple[str, str, int, int]]:
    toks: list[tuple[str, str, int, int]] = []
    pos, n = 0, len(text)

    def line_at(p: int) -> int:
        return text.count("\n", 0, p) + 1

    def emit(typ: str, val: str, p: int) -> None:
        toks.append((typ, val, p, line_at(p)))

    while True:
        start = text.find("{{", pos)
        if start < 0:
            if pos < n:
                emit("text", text[pos:], pos)
            emit("eof", "", n)
            return toks
        trim = text.startswith("-", start + 2) and _is_space(text[start + 3 : start + 4])
        chunk = text[pos:start].rstrip(_SPACE) if trim else text[pos:start]
        if chunk:
            emit("text", chunk, pos)
        pos = start + (4 if trim else 2)
        if text.startswith("/*", pos):  # comment: must be followed directly by the delimiter
            end = text.find("*/", pos + 2)
            if end < 0:
                emit("error", "unclosed comment", pos)
                return toks
            pos = end + 2
            at_delim, rtrim = _right_delim(text, pos)
            if not at_delim:
                emit("error", "comment ends before closing delimiter", pos)
                return toks
            pos += 4 if rtrim else 2
            if rtrim:
                pos = len(text) - len(text[pos:].lstrip(_SPACE))
            continue
        emit("ldelim", "{{", start)
        depth = 0
        while True:  # inside the action
            at_delim, rtrim = _right_delim(text, pos)
            if at_delim:
                if depth:
                    emit("error", "unclosed left paren", pos)
                    return toks
                emit("rdelim", "}}", pos)
                pos += 4 if rtrim else 2
                if rtrim:
                    pos = len(text) - len(text[pos:].lstrip(_SPACE))
                break
            if pos >= n:
                emit("error", "unclosed action", pos)
                return toks
            c, p = text[pos], pos
            if c in _SPACE:
                end = pos
                while end < n and text[end] in _SPACE:
                    end += 1
                if text.startswith("-}}", end):
                    end -= 1  # leave the last space to the " -}}" trim marker
                if end > pos:
                    emit("space", text[pos:end], pos)
                pos = end
                continue
            if c == ":":
                if not text.startswith(":=", pos):
                    emit("error", "expected :=", pos)
                    return toks
                emit("declare", ":=", p)
                pos += 2
            elif c in "=|(),":
                if c == ")" and not depth:  # reported instead of the token
                    emit("error", "unexpected right paren", p)
                    return toks
                depth += (c == "(") - (c == ")")
                kinds = {"=": "assign", "|": "pipe", "(": "lparen", ")": "rparen", ",": "char"}
                emit(kinds[c], c, p)
                pos += 1
            elif c in "\"`'":
                end, closer = pos + 1, c
                while end < n and text[end] != closer:
                    if text[end] == "\\" and c != "`":
                        end += 1
                    elif text[end] == "\n" and c != "`":
                        end = n
                    end += 1
                if end >= n:
                    what = {
                        '"': "quoted string",
                        "`": "raw quoted string",
                        "'": "character constant",
                    }
                    emit("error", f"unterminated {what[c]}", p)
                    return toks
                emit({'"': "str", "`": "raw", "'": "charc"}[c], text[p : end + 1], p)
                pos = end + 1
            elif (c == "." and not text[pos + 1 : pos + 2].isdigit()) or c == "$":
                end = _scan_word(text, pos + 1)
                word = text[pos + 1 : end]
                pos = end
                if not _at_terminator(text, pos):  # Go reports this instead of the token
                    emit("error", f"bad character {go_rune_u(text[pos])}", pos)
                    return toks
                if c == "$":
                    emit("var", "$" + word, p)
                else:
                    emit("field" if word else "dot", "." + word, p)
            elif c in "+-." or "0" <= c <= "9":
                end = _scan_number(text, pos)
                if end < n and (text[end].isalnum() or text[end] == "_"):
                    emit("error", f"bad number syntax: {go_quote(text[p : end + 1])}", p)
                    return toks
                emit("num", text[p:end], p)
                pos = end
            elif c.isalnum() or c == "_":
                end = _scan_word(text, pos)
                word = text[pos:end]
                pos = end
                if not _at_terminator(text, pos):
                    emit("error", f"bad character {go_rune_u(text[pos])}", pos)
                    return toks
                kw = word if word in _KEYWORDS else "ident"
                emit("bool" if word in ("true", "false") else kw, word, p)
            elif " " < c < "\x7f":
                emit("char", c, p)
                pos += 1
            else:
                emit("error", f"unrecognized character in action: {go_rune_u(c)}", p)
                return toks


def _is_space(c: str) -> bool:
    return c != "" and c in _SPACE


def _right_delim(text: str, pos: int) -> tuple[bool, bool]:
    """(at a closing delimiter, with a " -}}" trim marker)."""
    if _is_space(text[pos : pos + 1]) and text.startswith("-}}", pos + 1):
        return True, True
    return text.startswith("}}", pos), False


def _at_terminator(text: str, pos: int) -> bool:
    c = text[pos : pos + 1]
    return not c or c in " \t\r\n.,|:()" or text.startswith("}}", pos)


# ----------------------------------------------------------------------------
# Parser (text/template/parse/parse.go). Nodes are small lists: [kind, pos, ...].
# kinds: text, action(pipe), if/with(pipe, list, else), range(pipe, list, else),
# template(name, pipe), break, continue, pipe(decls, is_assign, cmds), cmd(args),
# field(idents), var(idents), chain(node, idents), ident(name), dot, nil, bool(v),
# num(text, int|None, float|None), str(quoted, value).


class Parser:
    def __init__(self, text: str, funcs: dict[str, object], name: str) -> None:
        self.toks = _lex(text)
        self.i = 0
        self.seen = 0  # furthest token looked at
        self.funcs = funcs
        self.name = name
        self.vars = ["$"]
        self.range_depth = 0
        self.defs: dict[str, list] = {}

    def error(self, msg: str, tok: tuple | None = None) -> TemplateError:
        tok = tok or self.toks[self.seen]  # Go reports the line of the last token lexed
        return TemplateError(f"template: {self.name}:{tok[3]}: {msg}")

    def next(self) -> tuple[str, str, int, int]:
        tok = self.toks[self.i]
        if tok[0] == "error":
            raise self.error(tok[1], tok)
        self.seen = max(self.seen, self.i)
        self.i += 1
        return tok

    def peek(self) -> tuple[str, str, int, int]:
        tok = self.next()
        self.i -= 1
        return tok

    def next_nonspace(self) -> tuple[str, str, int, int]:
        tok = self.next()
        while tok[0] == "space":
            tok = self.next()
        return tok

    def peek_nonspace(self) -> tuple[str, str, int, int]:
        tok = self.next_nonspace()
        self.i -= 1
        return tok

    def unexpected(self, tok: tuple, context: str) -> TemplateError:
        return self.error(f"unexpected {_tok_str(tok)} in {context}", tok)

    def parse(self) -> list:
        root: list = []
        while self.peek()[0] != "eof":
            if self.peek()[0] == "ldelim" and self._peek2() in ("define", "block"):
                self.next()
                kw = self.next_nonspace()[0]
                name, pos, pipe, body = self._named(f"{kw} clause")
                self.defs[name] = body
                if kw == "block":
                    root.append(["template", pos, name, pipe])
                continue
            node = self.text_or_action()
            if node[0] in ("end", "else"):
                raise self.error(f"unexpected {{{{{node[0]}}}}}")
            root.append(node)
        return root

    def _peek2(self) -> str:
        j = self.i + 1
        while self.toks[j][0] == "space":
            j += 1
        return self.toks[j][0]

    def _named(self, context: str) -> tuple[str, int, list | None, list]:
        tok = self.next_nonspace()
        if tok[0] not in ("str", "raw"):
            raise self.unexpected(tok, context)
        pipe = None
        if self.peek_nonspace()[0] != "rdelim":
            pipe = self.pipeline(context, "rdelim")
        else:
            self.next_nonspace()
        body, end = self.item_list()
        if end[0] != "end":
            raise self.error(f"unexpected {{{{else}}}} in {context}")
        return unquote(tok[1]), tok[2], pipe, body

    def item_list(self) -> tuple[list, list]:
        nodes: list = []
        while self.peek_nonspace()[0] != "eof":
            node = self.text_or_action()
            if node[0] in ("end", "else"):
                return nodes, node
            nodes.append(node)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> list:
        tok = self.next_nonspace()
        if tok[0] == "text":
            return ["text", tok[2], tok[1]]
        if tok[0] != "ldelim":
            raise self.unexpected(tok, "input")
        tok = self.next_nonspace()
        kind = tok[0]
        if kind in ("if", "with", "range"):
            return self.control(kind, tok)
        if kind == "else":
            if self.peek_nonspace()[0] not in ("if", "with"):
                self.expect("rdelim", "else")
            return ["else", tok[2]]
        if kind == "end":
            self.expect("rdelim", "end")
            return ["end", tok[2]]
        if kind in ("break", "continue"):
            self.expect("rdelim", f"{{{{{kind}}}}}")
            if not self.range_depth:
                raise self.error(f"{{{{{kind}}}}} outside {{{{range}}}}")
            return [kind, tok[2]]
        if kind == "template":
            name = self.next_nonspace()
            if name[0] not in ("str", "raw"):
                raise self.unexpected(name, "template clause")
            pipe = None
            if self.peek_nonspace()[0] != "rdelim":
                pipe = self.pipeline("template clause", "rdelim")
            else:
                self.next_nonspace()
            return ["template", name[2], unquote(name[1]), pipe]
        self.i -= 1  # not a keyword: re-read the token as the start of a pipeline
        return ["action", tok[2], self.pipeline("command", "rdelim")]

    def expect(self, typ: str, context: str) -> tuple:
        tok = self.next_nonspace()
        if tok[0] != typ:
            raise self.unexpected(tok, context)
        return tok

    def control(self, kind: str, tok: tuple) -> list:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(kind, "rdelim")
            self.range_depth += kind == "range"
            body, nxt = self.item_list()
            self.range_depth -= kind == "range"
            else_list = None
            if nxt[0] == "else":
                # "{{else if x}}" is "{{else}}{{if x}}...{{end}}" sharing one {{end}}.
                follow = self.peek_nonspace()
                if kind in ("if", "with") and follow[0] == kind:
                    else_list = [self.control(kind, self.next_nonspace())]
                else:
                    else_list, nxt = self.item_list()
                    if nxt[0] != "end":
                        raise self.error("expected end; found {{else}}")
            return [kind, tok[2], pipe, body, else_list]
        finally:
            del self.vars[mark:]

    def pipeline(self, context: str, end: str) -> list:
        decls: list[str] = []
        is_assign = False
        start = self.peek_nonspace()[2]
        while self.peek_nonspace()[0] == "var":
            save = self.i
            var = self.next_nonspace()
            nxt = self.peek_nonspace()
            if nxt[0] in ("assign", "declare"):
                self.next_nonspace()
                is_assign = nxt[0] == "assign"
                decls.append(var[1])
                self.vars.append(var[1])
                break
            if nxt[0] == "char" and nxt[1] == ",":
                self.next_nonspace()
                decls.append(var[1])
                self.vars.append(var[1])
                if context == "range" and len(decls) < 2:
                    if self.peek_nonspace()[0] in ("var", "rdelim", "rparen"):
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            self.i = save
            break
        cmds: list = []
        while True:
            tok = self.next_nonspace()
            if tok[0] == end:
                if not cmds:
                    raise self.error(f"missing value for {context}")
                for k, cmd in enumerate(cmds[1:]):
                    if cmd[2][0][0] in ("bool", "dot", "nil", "num", "str"):
                        raise self.error(f"non executable command in pipeline stage {k + 2}")
                return ["pipe", start, decls, is_assign, cmds]
            if tok[0] in (
                "bool",
                "charc",
                "dot",
                "field",
                "ident",
                "num",
                "nil",
                "raw",
                "str",
            ) or tok[0] in ("var", "lparen"):
                self.i -= 1
                cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def command(self) -> list:
        cmd = ["cmd", self.peek_nonspace()[2], []]
        while True:
            self.peek_nonspace()
            operand = self.operand()
            if operand is not None:
                cmd[2].append(operand)
            tok = self.next()
            if tok[0] == "space":
                continue
            if tok[0] in ("rdelim", "rparen"):
                self.i -= 1
            elif tok[0] != "pipe":
                raise self.unexpected(tok, "operand")
            break
        if not cmd[2]:
            raise self.error("empty command")
        return cmd

    def operand(self) -> list | None:
        node = self.term()
        if node is None or self.peek()[0] != "field":
            return node
        chain_pos = self.peek()[2]
        fields = []
        while self.peek()[0] == "field":
            fields.append(self.next()[1][1:])
        if node[0] == "field":  # Go gives the merged node the chain's position
            return ["field", chain_pos, node[2] + fields]
        if node[0] == "var":
            return ["var", chain_pos, node[2] + fields]
        if node[0] in ("bool", "str", "num", "nil", "dot"):
            raise self.error(f"unexpected . after term {go_quote(node_str(node))}")
        return ["chain", chain_pos, node, fields]

    def term(self) -> list | None:
        tok = self.next_nonspace()
        typ, val, pos = tok[0], tok[1], tok[2]
        if typ == "ident":
            if val not in self.funcs:
                raise self.error(f"function {go_quote(val)} not defined")
            return ["ident", pos, val]
        if typ in ("dot", "nil"):
            return [typ, pos]
        if typ == "var":
            if val not in self.vars:
                raise self.error(f"undefined variable {go_quote(val)}")
            return ["var", pos, [val]]
        if typ == "field":
            return ["field", pos, [val[1:]]]
        if typ == "bool":
            return ["bool", pos, val == "true"]
        if typ in ("num", "charc"):
            return ["num", pos, val, *parse_number(val, typ == "charc", self.error)]
        if typ == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if typ in ("str", "raw"):
            try:
                return ["str", pos, val, unquote(val)]
            except ValueError:
                raise self.error("invalid syntax") from None
        self.i -= 1
        return None


def _tok_str(tok: tuple) -> str:
    if tok[0] == "eof":
        return "EOF"
    if tok[0] in _KEYWORDS or tok[0] == "dot":  # Go prints keyword items as <name>
        return f"<{tok[1]}>"
    if len(tok[1]) > 10:
        return go_quote(tok[1][:10]) + "..."
    return go_quote(tok[1])


def node_str(node: list) -> str:
    """Go's Node.String(): what error messages show in "at <...>"."""
    kind = node[0]
    if kind == "field":
        return "".join("." + f for f in node[2])
    if kind == "var":
        return ".".join(node[2])
    if kind == "chain":
        inner = node[2]
        head = f"({node_str(inner)})" if inner[0] == "pipe" else node_str(inner)
        return head + "".join("." + f for f in node[3])
    if kind == "pipe":
        decl = ", ".join(node[2]) + (" = " if node[3] else " := ") if node[2] else ""
        return decl + " | ".join(node_str(c) for c in node[4])
    if kind == "cmd":
        return " ".join(f"({node_str(a)})" if a[0] == "pipe" else node_str(a) for a in node[2])
    if kind == "template":
        return "{{template " + go_quote(node[2]) + "}}"
    if kind == "bool":
        return "true" if node[2] else "false"
    return {"dot": ".", "nil": "nil"}.get(kind) or str(node[2])  # ident name, literal text


# ----------------------------------------------------------------------------
# Execution (text/template/exec.go)


def unquote(q: str) -> str:
    """strconv.Unquote for "..." and `...` literals (\\x and octal escapes are bytes)."""
    if q[0] == "`":
        return q[1:-1].replace("\r", "")
    body, out, i = q[1:-1], bytearray(), 0
    simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += go_bytes(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[e]
            code = int(body[i + 2 : i + 2 + size], 16)
            if len(body[i + 2 : i + 2 + size]) != size or code > 0x10FFFF:
                raise ValueError("invalid syntax")
            out += bytes([code]) if e == "x" else go_bytes(chr(code))
            i += 2 + size
        elif e and e in "01234567":
            code = int(body[i + 1 : i + 4], 8)
            if code > 255:
                raise ValueError("invalid syntax")
            out.append(code)
            i += 4
        else:
            raise ValueError("invalid syntax")
    return go_str(bytes(out))


def parse_number(text: str, is_char: bool, error: object) -> tuple[int | None, float | None]:
    """parse.NumberNode: (int value if it is an integer, float value if any)."""
    if is_char:
        body = text[1:-1]
        try:
            ch = unquote('"' + body.replace('"', '\\"').replace("\\'", "'") + '"')
        except ValueError:
            ch = ""
        if not body or body == "'":
            raise error("invalid syntax")  # type: ignore[operator]
        if len(ch) != 1:
            raise error(f"malformed character constant: {text}")  # type: ignore[operator]
        return ord(ch), float(ord(ch))
    try:
        i = parse_go_int(text)
        return i, float(i)
    except ValueError:
        pass
    try:
        f = parse_go_float(text)
    except ValueError:
        raise error(f"illegal number syntax: {go_quote(text)}") from None  # type: ignore[operator]
    if not any(c in text for c in ".eEpP"):
        raise error(f"integer overflow: {go_quote(text)}")  # type: ignore[operator]
    as_int = int(f) if f == f and abs(f) < 2**63 and float(int(f)) == f else None
    return as_int, f
