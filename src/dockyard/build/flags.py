"""Builder flags (`COPY --from=x`): BuildKit's BFlags, and its "did you mean" suggestions."""

from __future__ import annotations

__all__ = ["BFlags", "Flag", "suggest"]


class Flag:
    def __init__(self, name: str, kind: str, default: str = "") -> None:
        self.name = name
        self.kind = kind  # "bool", "string" or "strings" (repeatable)
        self.value = default
        self.values: list[str] = []
        self.used = False


class BFlags:
    """The flags an instruction declares, checked against the ones written on its line."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.flags: dict[str, Flag] = {}

    def _add(self, name: str, kind: str, default: str) -> Flag:
        flag = Flag(name, kind, default)
        self.flags[name] = flag
        return flag

    def add_bool(self, name: str) -> Flag:
        return self._add(name, "bool", "false")

    def add_string(self, name: str, default: str = "") -> Flag:
        return self._add(name, "string", default)

    def add_strings(self, name: str) -> Flag:
        return self._add(name, "strings", "")

    def used(self) -> list[str]:
        return [f.name for f in self.flags.values() if f.used]

    def parse(self) -> None:
        """Apply the written flags; ValueError with BuildKit's text for a bad one."""
        for arg in self.args:
            if arg == "--":
                return  # POSIX: "--" ends the options
            if not arg.startswith("--"):
                raise ValueError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            name = flag_name[2:]
            flag = self.flags.get(name)
            if flag is None:
                text = f"unknown flag: {flag_name}"
                match = suggest(name, list(self.flags), case_sensitive=True)
                raise ValueError(f"{text} (did you mean {match}?)" if match else text)
            if flag.used and flag.kind != "strings":
                raise ValueError(f"duplicate flag specified: {flag_name}")
            flag.used = True
            if flag.kind == "bool":
                if has_value and not value:
                    raise ValueError(f"missing a value on flag: {flag_name}")
                if value.lower() in ("true", ""):
                    flag.value = "true"
                elif value.lower() == "false":
                    flag.value = "false"
                else:
                    raise ValueError(f"expecting boolean value for flag {flag_name}, not: {value}")
            elif not has_value:
                raise ValueError(f"missing a value on flag: {flag_name}")
            elif flag.kind == "string":
                flag.value = value
            else:
                flag.values.append(value)


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: list[str], *, case_sensitive: bool) -> str:
    """The closest option within edit distance 2, in the value's case; "" when none or exact.

    BuildKit walks a Go map (random order) and keeps the first strictly closer option; we walk
    the options sorted so that ties give the same answer every time.
    """
    val = value if case_sensitive else value.lower()
    best, best_dist = "", 3
    for opt in sorted(options):
        cand = opt if case_sensitive else opt.lower()
        if cand == val:
            return ""  # an exact match means the error is about something else
        dist = levenshtein(val, cand)
        if dist < best_dist:
            best, best_dist = cand, dist
            if not case_sensitive:
                best = _match_case(cand, value)
    return best


def _match_case(val: str, orig: str) -> str:
    if orig == orig.lower():
        return val.lower()
    if orig == orig.upper():
        return val.upper()
    return val
