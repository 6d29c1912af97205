"""Removing what containers made: a tree with files under subordinate ids.

A container's processes write with the ids of the user namespace: a process that
runs as uid 101 in the container makes files owned by a subordinate uid, which the
user cannot delete (a 0700 folder of nginx's, for example). secpod removes such a
tree as ``podman unshare rm -rf`` would: in a user namespace mapped as its
containers are (``preflight.identity``), where the user is root over those ids.
What then still remains is reported, never passed over.
"""

from __future__ import annotations

from pathlib import Path

from secpod import _files
from secpod.errors import HostError

TYPE_CHECKING = False  # typing is for mypy only
if TYPE_CHECKING:
    import subprocess
    from typing import Any


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it. Raises HostError if anything remains."""
    failed: list[str] = []
    _files.remove_tree(path, failed)
    if not path.exists() and not path.is_symlink():
        return
    _remove_mapped(path)
    if path.exists() or path.is_symlink():
        raise HostError(
            f"could not remove {path}: files made in the container remain "
            f"(first: {failed[0] if failed else path})",
            hint="check that newuidmap and /etc/subuid still map your ranges "
                 "(secpod doctor), then run the command again",
        )


def _remove_mapped(path: Path) -> None:
    """``rm -rf path`` as root of a user namespace with the containers' id mappings."""
    try:
        run_mapped(["rm", "-rf", "--", str(path)], timeout=600)
    except HostError:
        pass  # what remains is reported by the caller


def start_mapped(argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` as root of a new user namespace mapped as the containers are
    (``preflight.identity``: 0 = the user, 1.. = the subordinate ranges).

    ``argv`` runs once the maps are written; its stdin is a pipe (``proc.stdin``), the
    other streams are as ``popen`` says. Raises HostError when the namespace or its maps
    cannot be made (the process is then ended)."""
    import subprocess

    from secpod.sandbox import preflight

    ident = preflight.identity()
    # unshare makes the namespace and waits on its stdin; the maps are written from out
    # here by the setuid helpers, then a line lets it exec argv as the namespace's root.
    proc = subprocess.Popen(
        ["unshare", "--user", "--", "sh", "-c", 'read -r _ && exec "$@"', "sh", *argv],
        stdin=subprocess.PIPE, **popen)
    assert proc.stdin is not None
    try:
        _wait_unshared(proc.pid)
        for helper, maps in (("newuidmap", ident.uid_map), ("newgidmap", ident.gid_map)):
            args = [str(n) for m in maps for n in (m.container_id, m.host_id, m.size)]
            mapped = subprocess.run([helper, str(proc.pid), *args], capture_output=True,
                                    text=True, check=False)
            if mapped.returncode != 0:
                raise HostError(f"{helper} failed: {mapped.stderr.strip()}",
                                hint="secpod doctor checks the subordinate id ranges")
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def run_mapped(argv: list[str], *, timeout: float = 600) -> str:
    """Run ``argv`` to its end as root of a mapped user namespace (:func:`start_mapped`);
    return its stdout. Raises HostError when it fails (with its stderr)."""
    import subprocess

    proc = start_mapped(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = _communicate(proc, timeout)
    if proc.returncode != 0:
        raise HostError(f"{argv[0]} in the containers' user namespace failed: "
                        f"{err.decode(errors='replace').strip()}",
                        hint="secpod doctor checks the subordinate id ranges and newuidmap")
    return out.decode(errors="replace")


def _communicate(proc: Any, timeout: float) -> tuple[bytes, bytes]:
    """A mapped child's (stdout, stderr) at its end; killed if it outlives ``timeout``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, err


def _wait_unshared(pid: int) -> None:
    """Until ``pid`` is in a user namespace other than ours (unshare has run)."""
    import os
    import time

    mine = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/ns/user") != mine:
                return
        except OSError:
            break
        time.sleep(0.005)
    raise HostError("unshare --user did not start a user namespace",
                    hint="secpod doctor checks that user namespaces are allowed")


def call_mapped(target: str, *args: object, timeout: float = 120) -> Any:
    """``module:function(*args)`` run by Python as root of a mapped user namespace (for
    what must read or write files of subordinate ids in an image); its JSON result.
    Raises the secpod error it raised (the same class), or HostError."""
    import json
    import os
    import subprocess
    import sys

    module, _, func = target.partition(":")
    pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import json, sys\n"
            f"sys.path.insert(0, {pkg!r})\n"
            "from secpod import errors\n"
            f"from {module} import {func} as f\n"
            "try:\n"
            "    out = {'ok': f(*json.loads(sys.argv[1]))}\n"
            "except errors.Error as e:\n"
            "    out = {'error': [type(e).__name__, e.message, e.hint]}\n"
            "print(json.dumps(out))\n")
    proc = start_mapped([sys.executable, "-c", code, json.dumps([str(a) if not isinstance(
        a, (bool, int)) else a for a in args])], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = _communicate(proc, timeout)
    try:
        msg = json.loads(out)
    except ValueError:
        raise HostError(f"{target} in the containers' user namespace failed: "
                        f"{err.decode(errors='replace').strip()[-400:]}",
                        hint="secpod doctor checks the subordinate id ranges") from None
    if "error" in msg:
        from secpod import errors

        name, message, hint = msg["error"]
        cls = getattr(errors, name, HostError)
        raise cls(message, hint=hint)
    return msg["ok"]

