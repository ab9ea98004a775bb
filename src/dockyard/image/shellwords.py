"""Dockerfile words (pure): quotes, escapes and `$VAR`/`${VAR...}` expansion as buildkit's
shell lexer (frontend/dockerfile/shell/lex.go) does them. Used by `--change` lines and, later,
the Dockerfile builder."""

from __future__ import annotations

import json
import re

from dockyard.errors import InvalidParameter

__all__ = ["expand", "expand_words", "go_quote", "split_words"]


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class _Words:
    """Splits processed text into words; text from quotes is kept whole."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if not ch.isspace():
            self.add_raw(ch)
        elif self.in_word and self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text = text
        self.pos = 0
        self.env = env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def process(self, stop: str = "", raw_escapes: bool = False) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                value = self.dollar()
                result.append(value)
                words.add_string(value)
            elif ch in "'\"":
                value = self.single_quote() if ch == "'" else self.double_quote()
                result.append(value)
                words.add_raw(value)
            else:
                self.next()
                if ch == "\\":
                    if raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.next()
            if not ch:
                raise ValueError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise ValueError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == "\\":
                following = self.peek()
                if not following:
                    continue  # a backslash at the very end is dropped
                if following in '"$\\':
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdecimal():
            start = self.pos
            while self.peek().isdecimal():
                self.next()
            return self.text[start : self.pos]
        if ch and ch in "@*#?-$!0":
            return self.next()
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise ValueError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ValueError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if not ch:
            raise ValueError("syntax error: missing '}'")
        if ch == "}":
            return self.env.get(name, "")
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            if not ch:
                raise ValueError("syntax error: missing '}'")
            modifier += ch
        if ch == "/" and not null_is_unset:
            return self.replace(name)
        if ch and ch in "+-?#%":
            if null_is_unset and ch in "#%":
                raise ValueError(f"unsupported modifier ({modifier}) in substitution")
            try:
                word, _ = self.process("}", raw_escapes=ch in "#%")
            except ValueError:
                if not self.peek():
                    raise ValueError("syntax error: missing '}'") from None
                raise
            is_set = name in self.env
            value = self.env.get(name, "")
            unset = not is_set or (null_is_unset and value == "")
            if ch == "-":
                return word if unset else value
            if ch == "+":
                return "" if unset else word
            if ch == "?":
                if not is_set:
                    raise ValueError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ValueError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            if ch == "#":
                return _trim_prefix(word, value, greedy)
            return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]
        raise ValueError(f"unsupported modifier ({modifier}) in substitution")

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process("/", raw_escapes=True)
        except ValueError:
            if not self.peek():
                raise ValueError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process("}", raw_escapes=True)
        except ValueError:
            if not self.peek():
                raise ValueError("syntax error: missing '}'") from None
            raise
        value = self.env.get(name, "")
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _: replacement, value, count=0 if replace_all else 1)


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """`*` and `?` wildcards (no brackets) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i : i + 1]
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise ValueError(f"invalid pattern ({pattern}) in substitution")
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _shell_pattern(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverses a pattern but keeps each escape before the character it escapes."""
    tokens = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i : i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _lex(word: str, env: dict[str, str]) -> tuple[str, list[str]]:
    try:
        return _Lexer(word, env).process()
    except ValueError as exc:
        raise InvalidParameter(f"failed to process {go_quote(word)}: {exc}") from None


def expand(word: str, env: dict[str, str]) -> str:
    """One shell word processed (buildkit's ProcessWord): quotes removed, backslash escapes,
    $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR?w}, ${VAR:?w}, ${VAR#p},
    ${VAR##p}, ${VAR%p}, ${VAR%%p}, ${VAR/p/r}, ${VAR//p/r}. Whitespace is kept."""
    return _lex(word, env)[0]


def expand_words(word: str, env: dict[str, str]) -> list[str]:
    """Like expand(), but split into words after expansion (buildkit's ProcessWords)."""
    return _lex(word, env)[1]


def split_words(text: str) -> list[str]:
    """The Dockerfile parser's parseWords: whitespace-separated words where quotes group; the
    quotes and escapes stay in the words, for expand() to process."""
    words: list[str] = []
    current: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        c = text[i]
        if not in_word:
            if c.isspace():
                i += 1
                continue
            in_word = True
        if not quote:
            if c.isspace():
                if blank_ok or current:
                    words.append("".join(current))
                current, blank_ok, in_word = [], False, False
                i += 1
                continue
            if c in "'\"":
                quote, blank_ok = c, True
            elif c == "\\":
                if i + 1 == len(text):
                    break
                current.append(c)
                i += 1
                c = text[i]
            current.append(c)
        else:
            if c == quote:
                quote = ""
            elif c == "\\" and quote != "'":
                if i + 1 == len(text):
                    quote = ""
                    i += 1
                    continue
                current.append(c)
                i += 1
                c = text[i]
            current.append(c)
        i += 1
    if in_word and (blank_ok or current):
        words.append("".join(current))
    return words
