"""Dockerfile text to logical lines ("nodes"): the syntax layer of BuildKit's parser (pure).

Follows frontend/dockerfile/parser (parser.go, line_parsers.go, split_command.go,
directives.go): parser directives at the top (`# syntax=`, `# escape=`, `# check=`), comments,
line continuations (comment lines and blank lines inside a continuation are skipped, as BuildKit
does, with a warning for the blank ones), builder flags (`--from=x`), the per-instruction argument
forms (JSON array or shell string, whitespace lists, `k=v` pairs, ONBUILD's sub-instruction) and
heredocs. Meaning (which flags an instruction takes, argument counts) is `instructions.py`.

We write the parser ourselves rather than use the PyPI `dockerfile` package (a Go extension
around this same parser): it gives no heredocs, no per-node line ranges beyond start/end, and
none of the error texts we must reproduce, and it would add a compiled dependency.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.build.errors import DockerfileError
from dockyard.build.lexer import LexError, ShellLex, go_is_space

__all__ = ["Heredoc", "Node", "ParseResult", "parse_heredoc", "parse_nodes"]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")  # reWhitespace: no \n, lines are already split
_HEREDOC = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_MAX_LINE = 64 * 1024  # bufio.Scanner's token limit, newline included

_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


@dataclass(frozen=True)
class Heredoc:
    """`<<EOF` ... `EOF`: content is as written (tabs stripped later when chomp is set)."""

    name: str
    content: str = ""
    expand: bool = True  # False when any part of the name was quoted: <<"EOF", <<'EOF'
    chomp: bool = False  # <<-EOF: leading tabs are stripped from the content and the end line
    fd: int = 0  # 3<<EOF


@dataclass
class Node:
    """One instruction as written: its keyword, builder flags and arguments."""

    command: str  # as written (case kept); compare with .lower()
    args: list[str]
    flags: list[str] = field(default_factory=list)
    json: bool = False  # the arguments were a JSON string array (exec form)
    original: str = ""  # the logical line (continuations joined, heredoc bodies not included)
    start_line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None  # ONBUILD's trigger instruction

    def can_contain_heredoc(self) -> bool:
        node = self.sub if self.command.lower() == "onbuild" and self.sub else self
        return node.command.lower() in _HEREDOC_COMMANDS and not node.json


@dataclass
class ParseResult:
    nodes: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _Directives:
    """Parser directives: recognised only in the leading comment lines, each at most once."""

    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.escape = "\\"
        self.continuation = _continuation_re("\\")

    def parse_line(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE.match(line[1:].lstrip())
        key = m.group(1).lower() if m else ""
        if m is None or key not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        value = m.group(2)
        self.seen[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = _continuation_re(value)
        return True


def _continuation_re(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _split_lf(text: str) -> list[str]:
    # Only "\n" ends a line for Go's scanner; a lone "\r" stays inside the line.
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def parse_nodes(source: str | bytes) -> ParseResult:
    """Split a Dockerfile into nodes. Raises DockerfileError with BuildKit's parser texts."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    text = text.removeprefix("\ufeff")
    lines = _split_lf(text)
    d = _Directives()
    result = ParseResult(nodes=[])
    i = 0
    current = 0

    def check_length(line: str, at: int) -> None:
        if len(line) > _MAX_LINE // 4 and len(line.encode()) > _MAX_LINE:
            raise DockerfileError(
                f"dockerfile line greater than max allowed size of {_MAX_LINE - 1}", at
            )

    def process(line: str, strip_left: bool) -> str:
        line = line.rstrip("\r\n")
        if strip_left:
            line = line.lstrip()
        try:
            d.parse_line(line)
        except ValueError as e:
            raise DockerfileError(str(e), current) from None
        return "" if _is_comment(line) else line

    def trim_continuation(line: str) -> tuple[str, bool]:
        m = d.continuation.search(line)
        if m is None:
            return line, True
        return line[: m.start()] + (m.group(1) or ""), False

    while i < len(lines):
        raw = lines[i]
        i += 1
        check_length(raw, current + 1)
        line = process(raw, True)
        current += 1
        start = current
        line, end = trim_continuation(line)
        if end and not line:
            continue
        parts = [line]
        blank_continuation = False
        while not end and i < len(lines):
            raw = lines[i]
            i += 1
            check_length(raw, current + 1)
            line = process(raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if not line.lstrip():
                blank_continuation = True
                continue
            line, end = trim_continuation(line)
            parts.append(line)
        logical = "".join(parts)
        if blank_continuation:
            result.warnings.append(f"Empty continuation line found in: {logical}")
        try:
            node = _node_from_line(logical, d.escape)
        except ValueError as e:
            raise DockerfileError(str(e), start, current) from None
        if node.can_contain_heredoc() and "<<" in logical:
            try:
                wanted = _heredocs_from_line(logical)
            except ValueError as e:
                raise DockerfileError(str(e), start, current) from None
            for doc in wanted:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    candidate = raw.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise DockerfileError("unterminated heredoc", start, current)
                node.heredocs.append(
                    Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd)
                )
        node.start_line, node.end_line = start, current
        result.nodes.append(node)
    if not result.nodes:
        raise DockerfileError("file with no instructions", current)
    result.escape = d.escape
    result.directives = dict(d.seen)
    return result


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--name=value` words (quotes and escapes processed); returns the rest too."""
    flags: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and go_is_space(line[pos]):
            pos += 1
        if pos == n:
            return "", flags
        if not line.startswith("--", pos):
            return line[pos:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while pos < n:
            ch = line[pos]
            if not quote and go_is_space(ch):
                break
            pos += 1
            if not quote and ch in "'\"":
                quote, blank_ok = ch, True
                continue
            if quote and ch == quote:
                quote = ""
                continue
            if ch == escape:
                if pos == n:
                    continue  # a trailing escape is dropped
                ch = line[pos]
                pos += 1
            word.append(ch)
        text = "".join(word)
        if text == "--" and pos < n:
            return line[pos:], flags  # "--" ends the flags
        if text != "--" and (blank_ok or text):
            flags.append(text)
        if pos == n:
            return "", flags


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words for ENV/LABEL/ARG: split at blanks outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == n:
                    continue
                buf.append(ch)
                ch = rest[i]
                i += 1
            buf.append(ch)
            continue
        if go_is_space(ch):
            if in_word and (blank_ok or buf):
                words.append("".join(buf))
            buf, in_word, blank_ok = [], False, False
            continue
        in_word = True
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i == n:
                continue  # an escape at the end of the line is dropped
            buf.append(ch)
            ch = rest[i]
            i += 1
        buf.append(ch)
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


def _parse_json(rest: str) -> list[str] | None:
    """The arguments as a JSON string array, or None when they are not a JSON array at all."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError(_NOT_STRING_ARRAY)
    return value


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # NaN/Infinity are not JSON to Go


def _whitespace_list(rest: str) -> list[str]:
    return _WHITESPACE.split(rest) if rest else []


def _name_val(rest: str, key: str, escape: str) -> list[str]:
    """ENV/LABEL as [key, value, delim] triples; delim "" marks the legacy `KEY value` form."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            from dockyard.gostrconv import go_quote

            raise ValueError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        k, v = word.split("=", 1)
        out += [k, v, "="]
    return out


def _node_from_line(line: str, escape: str) -> Node:
    cmd, flags, rest = _split_command(line, escape)
    node = Node(command=cmd, args=[], flags=flags, original=line)
    kind = cmd.lower()
    if kind in ("add", "copy", "volume"):
        arr = _parse_json(rest)
        node.args, node.json = (arr, True) if arr is not None else (_whitespace_list(rest), False)
    elif kind in ("cmd", "entrypoint", "run", "shell"):
        _maybe_json(node, rest)
    elif kind in ("env", "label"):
        node.args = _name_val(rest, "ENV" if kind == "env" else "LABEL", escape)
    elif kind == "arg":
        node.args = _parse_words(rest, escape)
    elif kind in ("expose", "from"):
        node.args = _whitespace_list(rest)
    elif kind == "healthcheck":
        _health(node, rest)
    elif kind in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif kind == "onbuild" and rest:
        node.sub = _node_from_line(rest, escape)
        node.args = [node.sub.command, *node.sub.args]
    return node


def _maybe_json(node: Node, rest: str) -> None:
    if not rest:
        return
    arr = _parse_json(rest)
    node.args, node.json = (arr, True) if arr is not None else ([rest], False)


def _health(node: Node, rest: str) -> None:
    """HEALTHCHECK: a type word (NONE/CMD) then a command in either form."""
    sep = 0
    while sep < len(rest) and not go_is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return
    nxt = sep
    while nxt < len(rest) and go_is_space(rest[nxt]):
        nxt += 1
    _maybe_json(node, rest[nxt:])
    node.args = [rest[:sep], *node.args]


def parse_heredoc(word: str) -> Heredoc | None:
    """A heredoc word (`<<EOF`, `<<-"EOF"`, `3<<EOF`) or None when the word is not one."""
    m = _HEREDOC.match(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    try:
        words = ShellLex("\\", skip_unset_env=True).process_words(rest, {})
        if len(words) != 1:
            return None
        raw = ShellLex("\\", skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    except LexError as e:
        raise ValueError(str(e)) from None
    if len(raw) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(
        name=words[0], expand=quotes == raw_quotes, chomp=m.group(2) == "-", fd=int(m.group(1) or 0)
    )


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except LexError:
        return []  # BuildKit ignores the error here and finds no heredocs
    found = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            found.append(doc)
    return found
