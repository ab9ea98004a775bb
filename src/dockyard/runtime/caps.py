"""Linux capabilities: names from the OCI spec to numbers, and applying the five sets.

The order matters and follows runc: the bounding set is reduced while we are still root with
CAP_SETPCAP, then PR_SET_KEEPCAPS keeps the permitted set across the uid change, and only after
the user switch are effective/permitted/inheritable set with capset(2) and the ambient set raised.

Capabilities the runtime itself does not hold (on this machine class CAP_SYS_RESOURCE is not in
our bounding set) cannot be granted to a container by anyone; asking for one is not an error
here (`docker run --privileged` asks for all of them) — it is silently left out, as the kernel
would leave it out of a bounding set anyway. Unknown names are an error (the OCI spec says
values that cannot be mapped to a kernel interface MUST fail).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import syscalls
from .defaults import KNOWN_CAPABILITIES, capabilities_from_mask

NAMES = KNOWN_CAPABILITIES  # bit order, capability.h
NUMBERS = {name: i for i, name in enumerate(NAMES)}


@cache  # read once, in the caller: the container's init must not pay for it
def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


class CapabilityError(ValueError):
    pass


def mask(names: list[str] | None) -> int:
    """Bit mask of capability names; an unknown name is an error."""
    bits = 0
    for name in names or ():
        number = NUMBERS.get(name.upper() if name.upper().startswith("CAP_") else f"CAP_{name}")
        if number is None:
            raise CapabilityError(f"unknown capability {name!r}")
        bits |= 1 << number
    return bits


def names(bits: int) -> list[str]:
    return capabilities_from_mask(bits)


@dataclass(frozen=True)
class CapSets:
    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int

    @classmethod
    def from_spec(cls, caps: dict[str, Any] | None) -> CapSets:
        last_cap()  # warm the cache before any fork
        caps = caps or {}
        return cls(*(mask(caps.get(k)) for k in _SETS))


_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def drop_bounding(sets: CapSets) -> None:
    """Drop every capability not in the bounding set (needs CAP_SETPCAP: do it as root)."""
    for cap in range(last_cap() + 1):
        if not sets.bounding >> cap & 1:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: the kernel does not know this cap
                    raise


def apply(sets: CapSets) -> None:
    """capset the effective/permitted/inheritable sets, then raise the ambient set.

    Capabilities we do not hold ourselves are left out rather than failing capset (see the
    module docstring); ambient capabilities need to be permitted and inheritable, so the kernel
    refuses the others and we skip them the way runc does.
    """
    _, held, _ = syscalls.capget()
    permitted = sets.permitted & held
    syscalls.capset(sets.effective & permitted, permitted, sets.inheritable & held)
    try:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        return  # kernel without ambient capabilities
    for cap in range(last_cap() + 1):
        if sets.ambient >> cap & 1:
            try:
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)
            except OSError:
                pass
