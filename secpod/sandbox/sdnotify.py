"""sd_notify(3) without libsystemd: tell systemd a ``Type=notify`` service is ready.

``secpod run -d`` (or ``start``) under a unit made by ``secpod generate systemd --new``
is not the service's main process: conmon is, and it outlives secpod. Once the
container runs, secpod sends ``MAINPID=<conmon's pid>`` and ``READY=1`` to the socket in
``$NOTIFY_SOCKET`` (the unit has ``NotifyAccess=all`` so that systemd takes them from
secpod), as Podman does for ``--sdnotify=conmon``. The socket is never passed on: the
container and its runtime do not see ``NOTIFY_SOCKET``.
"""

from __future__ import annotations

import os

from secpod.errors import HostError


def ready(main_pid: int | None, *, path: str | None = None) -> None:
    """Send ``MAINPID`` (when known) and ``READY=1``. Raises HostError when the socket
    named by ``$NOTIFY_SOCKET`` cannot be written (systemd would then time out)."""
    import socket

    where = path if path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not where:
        return
    address = "\0" + where[1:] if where.startswith("@") else where  # abstract namespace
    message = (f"MAINPID={main_pid}\n" if main_pid else "") + "READY=1\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError as e:
        raise HostError(f"cannot tell systemd the container is ready ({where}): {e.strerror}",
                        hint="the unit's NOTIFY_SOCKET is gone; systemctl --user status "
                             "UNIT says more") from e
