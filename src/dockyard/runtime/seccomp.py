"""linux.seccomp: compile the spec's profile to classic BPF with libseccomp, load it in the child.

Compiling happens in the caller, before fork (docker's default profile takes a few ms to build
and is the same for every container, so programs are cached by profile); the child only makes
one seccomp(2) call with the bytes, as late as possible before execve. libseccomp is loaded
with ctypes (Debian's libseccomp2, which runc and crun use too); without it a spec asking for
seccomp fails to create rather than silently running unconfined.

Semantics follow runc: a rule whose action equals the default action is skipped, syscall names
the library does not know are skipped (profiles list syscalls of newer kernels), and several
conditions on the same argument become separate rules (libseccomp cannot AND them).
Not supported: SCMP_ACT_NOTIFY / listenerPath (seccomp user notification).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from typing import Any

from .syscalls import load_library

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
_FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_ATTR_CTL_NNP = 3


class SeccompError(ValueError):
    pass


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: ctypes.CDLL | None = None
_cache: dict[str, tuple[bytes, int]] = {}


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = load_library("libseccomp.so.2")
        if lib is None:
            raise SeccompError("seccomp requested but libseccomp.so.2 is not installed")
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def _action(name: str | None, errno_ret: int | None, default_errno: int | None) -> int:
    name = (name or "").upper()
    if name == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return _ACT_LOG
    if name == "SCMP_ACT_ERRNO":
        code = errno_ret if errno_ret is not None else default_errno
        return _ACT_ERRNO | ((errno.EPERM if code is None else code) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        code = errno_ret if errno_ret is not None else errno.EPERM
        return _ACT_TRACE | (code & 0xFFFF)
    raise SeccompError(f"seccomp action {name!r} is not supported")


def compile_profile(profile: dict[str, Any]) -> tuple[bytes, int]:
    """(BPF program bytes, seccomp(2) filter flags) for the spec's `linux.seccomp`."""
    key = json.dumps(profile, sort_keys=True)
    if key in _cache:
        return _cache[key]
    if profile.get("listenerPath"):
        raise SeccompError("seccomp listenerPath (user notification) is not supported")
    lib = _library()
    default_errno = profile.get("defaultErrnoRet")
    default = _action(profile.get("defaultAction"), default_errno, None)
    flags = 0
    for flag in profile.get("flags") or ():
        if flag not in _FILTER_FLAGS:
            raise SeccompError(f"seccomp flag {flag!r} is not supported")
        flags |= _FILTER_FLAGS[flag]
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0)
        for arch in profile.get("architectures") or ():
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise SeccompError(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:
                raise SeccompError(f"seccomp_arch_add {arch}: {os.strerror(-rc)}")
        for rule in profile.get("syscalls") or ():
            action = _action(rule.get("action"), rule.get("errnoRet"), default_errno)
            if action == default:
                continue
            conds = [
                (int(a["index"]), _OPS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0)))
                for a in rule.get("args") or ()
            ]
            indexes = [c[0] for c in conds]
            # Conditions on one argument are ORed as separate rules (libseccomp cannot AND them).
            groups = [[c] for c in conds] if len(set(indexes)) < len(indexes) else [conds]
            for name in rule.get("names") or ():
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # unknown to this libseccomp: nothing to filter
                for group in groups:
                    array = (_ArgCmp * max(len(group), 1))(*(_ArgCmp(*c) for c in group))
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
                    if rc < 0:
                        raise SeccompError(f"seccomp rule for {name}: {os.strerror(-rc)}")
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise SeccompError(f"seccomp_export_bpf: {os.strerror(-rc)}")
            program = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    _cache[key] = (program, flags)
    return program, flags
