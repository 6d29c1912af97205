"""Linux capability names: validation and the sets a profile resolves to."""

from __future__ import annotations

from collections.abc import Iterable

from secpod.errors import ProfileError, UsageError

# capabilities(7), in kernel order (include/uapi/linux/capability.h).
ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
_KNOWN = frozenset(ALL_CAPS)


def normalize(name: str, *, source: str | None = None) -> str:
    """``"net_raw"``, ``"NET_RAW"`` and ``"CAP_NET_RAW"`` -> ``"CAP_NET_RAW"``.

    Raises ProfileError (when ``source`` names a profile file) or UsageError
    (a command-line value) for a name that is not a Linux capability.
    """
    cap = name.strip().upper()
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in _KNOWN:
        hint = "capability names are those of capabilities(7), e.g. CAP_NET_BIND_SERVICE"
        if source is not None:
            raise ProfileError(f"{source}: unknown capability {name!r}", hint=hint)
        raise UsageError(f"unknown capability {name!r}", hint=hint)
    return cap


def apply(base: Iterable[str], add: Iterable[str] = (),
          drop: Iterable[str] = ()) -> tuple[str, ...]:
    """The set ``base + add - drop`` in kernel order.

    ``ALL`` is accepted in both: as in Docker, ``--cap-drop ALL --cap-add X``
    keeps only X (``ALL`` in drop clears the base before the adds; named drops
    apply after the adds). Raises UsageError for an unknown name.
    """
    current = set(base)
    drop = list(drop)
    add = list(add)
    if any(d.strip().upper() == "ALL" for d in drop):
        current.clear()
        drop = [d for d in drop if d.strip().upper() != "ALL"]
    for a in add:
        if a.strip().upper() == "ALL":
            current.update(ALL_CAPS)
        else:
            current.add(normalize(a))
    for d in drop:
        current.discard(normalize(d))
    return tuple(c for c in ALL_CAPS if c in current)
