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
    import subprocess

    from secpod.sandbox import preflight

    ident = preflight.identity()
    # unshare makes the namespace and waits on its stdin; the maps are written from out
    # here by the setuid helpers, then a line lets it run rm as the namespace's root.
    proc = subprocess.Popen(
        ["unshare", "--user", "--", "sh", "-c", 'read -r _ && exec rm -rf -- "$1"', "sh",
         str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
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
        proc.stdin.close()
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
