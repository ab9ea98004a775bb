"""`--user` and `--group-add` resolved against a container's /etc/passwd and /etc/group.

These are the rules of runc's user lookup (moby/sys/user GetExecUser, GetAdditionalGroups) that
dockerd applies when it builds the spec: a name is looked up, a number is taken as an ID even
when no entry has it, the first matching entry wins, and a user given without a group gets the
groups that list it as a member. Everything is pure over the files' text: the caller reads them
from inside the container root (safely: they may be symlinks planted by the image) and passes
None for a file that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.errors import DockyardError

MIN_ID = 0
MAX_ID = 2**31 - 1  # runc refuses IDs above MaxInt32 (32-bit compatibility)

ERR_RANGE = f"uids and gids must be in range {MIN_ID}-{MAX_ID}"
ERR_NO_PASSWD = "no matching entries in passwd file"
ERR_NO_GROUP = "no matching entries in group file"

# bufio.Scanner limits: a longer line is an error in runc, so it is here too; it also bounds
# what a hostile image can make us hold for one entry.
_PASSWD_MAX_LINE = 64 * 1024
_GROUP_MAX_LINE = 1024 * 1024

# Go's bytes.TrimSpace (unicode.IsSpace); Python's str.strip() would also strip \x1c-\x1f.
_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


class UserLookupError(DockyardError):
    """A user or group could not be resolved; dockerd fails the container start with this text."""


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = field(default_factory=tuple)


def _go_atoi(text: str) -> tuple[int, str | None]:
    """strconv.Atoi: (value, None), or (value, "syntax"|"range") as Go reports them.

    Go accepts an optional sign and ASCII digits only: no spaces and no underscores, unlike
    Python's int(). On overflow Go returns the clamped int64 value.
    """
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return 0, "syntax"
    value = int(text)
    if value > 2**63 - 1:
        return 2**63 - 1, "range"
    if value < -(2**63):
        return -(2**63), "range"
    return value, None


def _parse_numeric(text: str) -> tuple[int, bool]:
    """(id, is_numeric) for a user or group argument; an out-of-range number is an error."""
    if text == "":
        return 0, False
    value, err = _go_atoi(text)
    if err == "syntax":
        return 0, False
    if err == "range" or not MIN_ID <= value <= MAX_ID:
        raise UserLookupError(ERR_RANGE)
    return value, True


def _lines(text: str, limit: int) -> list[str]:
    out = []
    for raw in text.split("\n"):
        if len(raw.encode("utf-8", "surrogateescape")) > limit:
            raise UserLookupError("bufio.Scanner: token too long")
        line = raw.strip(_GO_SPACE)
        if line:
            out.append(line)
    return out


def _field_int(parts: list[str], i: int) -> int:
    # Misbehaving files are tolerated as runc does: a bad number reads as 0.
    return _go_atoi(parts[i])[0] if i < len(parts) else 0


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of an /etc/passwd text (name:pass:uid:gid:gecos:home:shell), in file order.

    Like runc, comment lines are *not* skipped here (only /etc/group skips them) and missing
    fields read as empty.
    """
    entries = []
    for line in _lines(text, _PASSWD_MAX_LINE):
        parts = line.split(":")
        home = parts[5] if len(parts) > 5 else ""
        entries.append(PasswdEntry(parts[0], _field_int(parts, 2), _field_int(parts, 3), home))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of an /etc/group text (name:pass:gid:member,member), in file order."""
    entries = []
    for line in _lines(text, _GROUP_MAX_LINE):
        if line.startswith("#"):
            continue
        parts = line.split(":")
        members = tuple(parts[3].split(",")) if len(parts) > 3 and parts[3] else ()
        entries.append(GroupEntry(parts[0], _field_int(parts, 2), members))
    return entries


def exec_user(user: str, passwd: str | None, group: str | None) -> tuple[int, int, list[int], str]:
    """(uid, gid, supplementary gids, home) for a `--user` value, as runc's GetExecUser.

    `user` is "", "name", "uid", "name:group", "uid:gid", ... Fields after a second ':' are
    ignored, as runc ignores them. Defaults are uid 0, gid 0, home "/"... except that an empty
    user picks the passwd entry of uid 0 (its gid and groups).
    """
    parts = user.split(":")
    user_arg = parts[0]
    group_arg = parts[1] if len(parts) > 1 else ""
    uid_arg, is_uid = _parse_numeric(user_arg)
    gid_arg, is_gid = _parse_numeric(group_arg)

    uid, gid, sgids, home = 0, 0, [], ""
    matched_name = ""
    try:
        entries = parse_passwd(passwd) if passwd is not None else []
    except UserLookupError as e:
        raise UserLookupError(f"unable to find user {user_arg or uid}: {e.message}") from None
    for entry in entries:
        if user_arg == "":
            hit = entry.uid == uid
        elif is_uid:
            hit = entry.uid == uid_arg
        else:
            hit = entry.name == user_arg
        if hit:  # first match wins, even when several entries match
            matched_name, uid, gid, home = entry.name, entry.uid, entry.gid, entry.home
            break
    else:
        if user_arg != "":
            if not is_uid:
                raise UserLookupError(f"unable to find user {user_arg}: {ERR_NO_PASSWD}")
            uid = uid_arg

    if group_arg != "" or matched_name != "":
        try:
            groups = parse_group(group) if group is not None else []
        except UserLookupError as e:
            raise UserLookupError(
                f"unable to find groups for spec {matched_name}: {e.message}"
            ) from None
        if group_arg != "":
            found = next(
                (g for g in groups if (g.gid == gid_arg if is_gid else g.name == group_arg)), None
            )
            if found is not None:
                gid = found.gid
            elif not is_gid:
                raise UserLookupError(f"unable to find group {group_arg}: {ERR_NO_GROUP}")
            else:
                gid = gid_arg
        else:
            # Supplementary groups only come from membership when no group was named.
            sgids = [g.gid for g in groups if matched_name in g.members]
    return uid, gid, sgids, home


def additional_groups(names: list[str], group: str | None) -> list[int]:
    """GIDs for `--group-add` values: names must exist, numbers need not.

    runc returns these through a Go map (random order, no duplicates); we keep the first
    occurrence of each in the order given, which is one of the orders runc can produce.
    """
    wanted = [(name, *_parse_numeric(name)) for name in names]
    try:
        groups = parse_group(group) if group is not None else []
    except UserLookupError as e:
        shown = "[" + " ".join(names) + "]"  # Go's %v of a []string
        raise UserLookupError(f"unable to find additional groups {shown}: {e.message}") from None
    gids: list[int] = []
    for name, gid, numeric in wanted:
        found = next((g for g in groups if (g.gid == gid if numeric else g.name == name)), None)
        if found is not None:
            if not MIN_ID <= found.gid <= MAX_ID:
                raise UserLookupError(ERR_RANGE)
            value = found.gid
        elif numeric:
            value = gid
        else:
            raise UserLookupError(f"unable to find group {name}: {ERR_NO_GROUP}")
        if value not in gids:
            gids.append(value)
    return gids


def resolve_user(
    user: str, passwd: str | None, group: str | None, extra_groups: list[str] | tuple[str, ...] = ()
) -> tuple[int, int, list[int]]:
    """(uid, gid, additionalGids) for the spec's process.user, as dockerd's getUser builds it.

    additionalGids is the primary gid, then the user's supplementary groups, then the
    `--group-add` groups; dockerd does not remove duplicates across these three.
    """
    uid, gid, sgids, _home = exec_user(user, passwd, group)
    extra = additional_groups(list(extra_groups), group) if extra_groups else []
    return uid, gid, [gid, *sgids, *extra]
