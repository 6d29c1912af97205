"""A container's seccomp filter as the file kubelet reads for ``seccompProfile:
{type: Localhost, localhostProfile: NAME.json}`` (under ``/var/lib/kubelet/seccomp/``).

The runtimes behind kubelet read one of two shapes: containerd the OCI runtime-spec
``linux.seccomp`` object, CRI-O (containers/common) the Docker profile format. Both take
``defaultAction``, ``defaultErrnoRet``, ``architectures`` and ``syscalls`` with ``names``,
``action``, ``errnoRet`` and ``args`` (``index``, ``value``, ``valueTwo``, ``op``): the
file holds exactly those, from the filter secpod handed crun (the container's
``config.json``), so a node enforces the rules the host enforced.
"""

from __future__ import annotations

import hashlib
import json

from secpod.errors import Refused

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_TOP = ("defaultAction", "defaultErrnoRet", "architectures", "syscalls")
_RULE = ("names", "action", "errnoRet", "args")
_ARG = ("index", "value", "valueTwo", "op")


def kubelet_json(oci: dict[str, Any], *, container: str) -> dict[str, Any]:
    """The kubelet file's content for an OCI ``linux.seccomp`` object.

    Raises Refused when the filter uses what kubelet's runtimes cannot be given in a
    file: a notify listener (``listenerPath``) or filter ``flags`` other than the
    kernel's defaults, or a rule without syscall names."""
    if oci.get("listenerPath"):
        raise Refused(f"container {container}'s seccomp filter hands syscalls to a "
                      f"listener ({oci['listenerPath']}), which a kubelet profile cannot")
    if oci.get("flags"):
        raise Refused(f"container {container}'s seccomp filter sets flags "
                      f"{', '.join(oci['flags'])}, which a kubelet profile cannot carry")
    out: dict[str, Any] = {k: oci[k] for k in _TOP if k in oci and k != "syscalls"}
    rules = []
    for rule in oci.get("syscalls") or []:
        if not rule.get("names"):
            raise Refused(f"container {container}'s seccomp filter has a rule without "
                          "syscall names")
        entry = {k: rule[k] for k in _RULE if k in rule and k != "args"}
        if rule.get("args"):
            entry["args"] = [{k: a[k] for k in _ARG if k in a} for a in rule["args"]]
        rules.append(entry)
    out["syscalls"] = rules
    return out


def file_name(profile: str, content: dict[str, Any]) -> str:
    """``secpod-PROFILE-HASH.json``: the same filter, the same name (a node keeps one
    file per filter, whichever containers use it)."""
    digest = hashlib.sha256(dumps(content).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in profile) or "profile"
    return f"secpod-{safe}-{digest}.json"


def dumps(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, sort_keys=True) + "\n"
