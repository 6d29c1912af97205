"""``--init``: catatonit as the container's PID 1, as Podman does it.

A program that does not expect to be PID 1 neither reaps the zombies its children
leave nor dies of SIGTERM (the kernel does not give PID 1 default signal actions).
catatonit (Debian's package ``catatonit``, statically linked) does both: it starts the
container's command as its child, passes signals on and exits with its status. It is
bind-mounted read-only from the host at ``/run/podman-init`` (Podman's place) and the
command runs as ``/run/podman-init -- CMD...``; nothing in the image changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from secpod.errors import HostError
from secpod.sandbox import rootfs as rootfsmod

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

DESTINATION = "/run/podman-init"
# Where Debian's catatonit and Podman's packaging put it.
_CANDIDATES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit")


def find() -> Path:
    """The host's catatonit. Raises HostError when it is not installed."""
    for candidate in (shutil.which("catatonit"), *_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise HostError("--init needs catatonit, which is not installed",
                    hint="apt install catatonit (or leave --init out)")


def add_to(config: dict[str, Any], image_tree: Path, *, create: bool = True) -> None:
    """Make catatonit the process of ``config`` (a bundle's config.json, not yet
    written): a read-only bind of the host's binary, and the command after ``--``.
    ``create``: its mount point is made in ``image_tree`` (a shared read-only root),
    else left to the runtime (an overlay root)."""
    source = find()
    rootfsmod.ensure_mountpoint(image_tree, DESTINATION, directory=False, create=create)
    config["mounts"].append({"destination": DESTINATION, "type": "bind",
                             "source": str(source),
                             "options": ["bind", "ro", "nosuid", "nodev"]})
    config["process"]["args"] = [DESTINATION, "--", *config["process"]["args"]]
