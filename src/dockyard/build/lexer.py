"""Dockerfile word processing (pure): quotes, escapes and `$VAR` / `${VAR...}` expansion.

Behaves as BuildKit's shell lexer (frontend/dockerfile/shell/lex.go), which both BuildKit and
the classic builder use: `process_word` gives one string with quotes removed and spaces kept
(ENV, LABEL, COPY, WORKDIR...), `process_words` splits the result into words after expansion
(EXPOSE, heredoc detection). Unlike `dockyard.image.shellwords` (enough for `--change` lines),
this one takes the file's escape token (`# escape=`) and the raw modes the parser needs to find
heredoc words. Errors are `LexError` with BuildKit's text, `failed to process "<word>": ...`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

__all__ = ["LexError", "ShellLex", "go_is_space"]

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# text/scanner's Next() at end of input is EOF (-1); string(rune(-1)) prints as U+FFFD.
_EOF_TEXT = "\ufffd"


class LexError(ValueError):
    """A word that cannot be processed (bad substitution, unterminated quote, `${V:?}`)."""


def go_is_space(ch: str) -> bool:
    """unicode.IsSpace: ASCII blanks, U+0085, U+00A0 and the Unicode White_Space separators."""
    if ch in "\t\n\v\f\r \x85\xa0":
        return True
    return ord(ch) > 0xFF and unicodedata.category(ch) in ("Zs", "Zl", "Zp")


class _Words:
    """Collects words: expanded text splits at blanks, quoted and escaped text never does."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if not go_is_space(ch):
            self.add_raw(ch)
        elif self.in_word and any(self.buf):  # quotes around nothing make no word
            self.words.append("".join(self.buf))
            self.buf, self.in_word = [], False

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def result(self) -> list[str]:
        if any(self.buf):
            self.words.append("".join(self.buf))
        self.buf, self.in_word = [], False
        return self.words


class ShellLex:
    """Word processing with an escape token and BuildKit's Lex options.

    raw_quotes keeps quote characters in the result, raw_escapes keeps escape tokens,
    skip_unset_env leaves references to unset variables as written, skip_process_quotes treats
    quotes as ordinary characters (heredoc bodies).
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset_env: bool = False,
        skip_process_quotes: bool = False,
    ) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset_env = skip_unset_env
        self.skip_process_quotes = skip_process_quotes

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self._run(word, env)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self._run(word, env)[1]

    def _run(self, word: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        scanner = _Scanner(self, word, env)
        try:
            return scanner.until("", self.raw_escapes)
        except LexError as e:
            raise LexError(f"failed to process {_go_q(word)}: {e}") from None


def _go_q(text: str) -> str:
    from dockyard.gostrconv import go_quote

    return go_quote(text)


class _Scanner:
    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to `stop` (consumed) or the end when stop is ""."""
        result: list[str] = []
        words = _Words()
        esc = self.lex.escape
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)  # an expanded value is split at blanks
            elif ch == "<":
                text = self.possible_heredoc()
                result.append(text)
                words.add_raw(text)
            elif ch in "'\"" and not self.lex.skip_process_quotes:
                text = self.single_quote() if ch == "'" else self.double_quote()
                result.append(text)
                words.add_raw(text)
            else:
                ch = self.next()
                if ch == esc:
                    if raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:  # an escape at the end is dropped
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        quote = self.next()
        out = [quote] if self.lex.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise LexError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        quote = self.next()
        out = [quote] if self.lex.raw_quotes else []
        esc = self.lex.escape
        while True:
            ch = self.peek()
            if not ch:
                raise LexError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.lex.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if not nxt:
                    continue  # the loop then reports the missing quote
                if nxt in ('"', "$", esc):  # only these are escapable inside "..."
                    ch = self.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        # "<< EOF" must stay one word so the parser can find heredoc names.
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces = []
        while self.peek() and self.peek() in "\t\r ":
            spaces.append(self.next())
        return "<<" + "".join(spaces)

    def lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def name(self) -> str:
        """A variable name: digits ($10), one special parameter ($$, $#...) or [letter/_]+."""
        first = self.peek()
        if first and first.isdigit():
            start = self.pos
            while self.peek() and self.peek().isdigit():
                self.next()
            return self.text[start : self.pos]
        if first and first in _SPECIAL_PARAMS:
            return self.next()
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.lex.skip_unset_env else ""
            return value
        self.next()
        first = self.peek()
        if not first:
            raise LexError("syntax error: missing '}'")
        if first in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        mod = ch or _EOF_TEXT
        if ch == "}":
            value = self.lookup(name)
            if value is None:
                return "${" + name + "}" if self.lex.skip_unset_env else ""
            return value
        if ch == "/":
            return self.replace(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            mod += ch or _EOF_TEXT
        elif not ch or ch not in "+-?#%":
            raise LexError(f"unsupported modifier ({mod}) in substitution")
        trims = bool(ch) and ch in "#%"
        if null_is_unset and trims:
            raise LexError(f"unsupported modifier ({mod}) in substitution")
        try:
            word, _ = self.until("}", trims)
        except LexError:
            if not self.peek():
                raise LexError("syntax error: missing '}'") from None
            raise
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            return "${" + name + mod + word + "}"
        unset = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else (value or "")
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if value is None:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value or "", greedy)
            return _trim_prefix(word, value or "", greedy)
        raise LexError(f"unsupported modifier ({mod}) in substitution")

    def replace(self, name: str) -> str:
        """${V/pattern/replacement} and ${V//pattern/replacement} (all matches)."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.until("/", True)
        except LexError:
            if not self.peek():
                raise LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.until("}", True)
        except LexError:
            if not self.peek():
                raise LexError("syntax error: missing '}'") from None
            raise
        value = self.lookup(name)
        if value is None and self.lex.skip_unset_env:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value or "", count=0 if replace_all else 1)


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, `\\` escapes; no brackets) as a regular expression."""
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
            nxt = pattern[i : i + 1]
            if nxt in ("}", "/"):  # escaped only to get past the ${...} syntax
                continue
            if nxt not in ("*", "?", "\\"):
                raise LexError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt or _EOF_TEXT}'"
                )
            out.append("\\" + nxt)
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _shell_pattern(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end() :] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each `\\x` escape in front of its character."""
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            units.append(pattern[i : i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regular expressions find the leftmost match; reversing both finds the rightmost one.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
