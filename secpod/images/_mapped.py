"""Unpacking in the containers' user namespace, so files keep their owners.

A layer's files belong to uids and gids of the container (33:33 for www-data, 1000
for a user the image made). secpod maps container root to the user and container
ids 1..N to the user's subordinate ranges (``preflight.identity``); to give a file
container uid 33, its host owner must be the 33rd subordinate uid, and only root of
a user namespace with that mapping may ``chown`` it there. So the
:class:`~secpod.images._unpack.Unpacker` runs in a child process that is root of such
a namespace (made as ``userns.start_mapped`` makes it: ``unshare --user``, the maps
written by newuidmap/newgidmap), as Podman's storage unpacks in its pause process's
namespace. The child reads the layer bytes from a pipe, framed, and answers on
another:

    parent -> child   "go" (written by start_mapped), then one JSON line
                      {"limits": {...}}, then any of: per layer a JSON line
                      {"layer": what, "diff_id": ..., "root": tree} followed by frames
                      (4-byte big-endian length, bytes; length 0 ends the layer);
                      {"farm": {"root": rootfs, "layers": [[what, tree, record], ...]}}
                      (secpod.images._farm); {"compare": [a, b]}
    child -> parent   one JSON line per request: {"ok": ...} (a layer's record, the
                      farm's report, the differences) or
                      {"error": {"type": ..., "message": ..., "hint": ...}}

An error in the child is raised again in the parent as the same secpod error
class; the child then ends. The parent owns the staging folder and removes it.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from pathlib import Path
    from typing import Any, BinaryIO

    from secpod.images._unpack import Limits

_FRAME = 1 << 20


def _error_from(info: dict[str, Any]) -> BaseException:
    from secpod import errors

    cls = getattr(errors, str(info.get("type")), None)
    message = str(info.get("message"))
    if not (isinstance(cls, type) and issubclass(cls, errors.Error)):
        return errors.HostError(f"unpacking in the user namespace failed: {message}",
                                hint="secpod doctor checks the user namespace set-up")
    return cls(message, hint=info.get("hint"))


class MappedUnpacker:
    """The :class:`~secpod.images._farm.LocalUnpacker` interface, run as root of a user
    namespace mapped as the containers are. Raises what the Unpacker and the Farm
    raise, and HostError when the namespace cannot be made. ``hold`` is a descriptor
    the child keeps open while it lives: the staging folder's lock, so that a secpod
    killed outright does not let another remove the folder while this child still
    writes into it."""

    def __init__(self, limits: Limits, hold: int | None = None) -> None:
        import subprocess

        from secpod.sandbox import userns

        pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {pkg!r}); "
                "from secpod.images._mapped import main; main()")
        self._proc: subprocess.Popen[bytes] | None = userns.start_mapped(
            [sys.executable, "-c", code], stdout=subprocess.PIPE,
            pass_fds=() if hold is None else (hold,))
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin
        self._out = self._proc.stdout
        try:
            import fcntl

            fcntl.fcntl(self._in.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ: fewer wake-ups
        except OSError:
            pass
        from secpod._record import asdict

        self._send({"limits": asdict(limits)})

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self._in.write(json.dumps(msg).encode() + b"\n")
            self._in.flush()
        except BrokenPipeError:
            self._answer()

    def _answer(self) -> Any:
        line = self._out.readline()
        if not line:
            assert self._proc is not None
            rc = self._proc.wait()
            from secpod.errors import HostError

            raise HostError(f"the unpacking process in the user namespace ended (status {rc})",
                            hint="secpod doctor checks the user namespace set-up")
        msg = json.loads(line)
        if "error" in msg:
            raise _error_from(msg["error"])
        return msg.get("ok")

    def apply_layer(self, blob: Path | BinaryIO, *, what: str, diff_id: str | None,
                    root: Path) -> dict[str, Any]:
        """As LocalUnpacker.apply_layer: the bytes are read here and framed to the child."""
        import struct

        if not hasattr(blob, "read"):
            with open(blob, "rb") as raw:
                return self.apply_layer(raw, what=what, diff_id=diff_id, root=root)
        self._send({"layer": what, "diff_id": diff_id, "root": str(root)})
        src: Any = blob
        try:
            while data := src.read(_FRAME):
                self._in.write(struct.pack(">I", len(data)))
                self._in.write(data)
            self._in.write(b"\0\0\0\0")
            self._in.flush()
        except BrokenPipeError:
            pass  # the child stopped: its answer says why
        meta: dict[str, Any] = self._answer()
        return meta

    def farm(self, root: Path, layers: list[tuple[str, Path, dict[str, Any]]]) -> dict[str, Any]:
        """As LocalUnpacker.farm, in the namespace (it links files of subordinate owners)."""
        self._send({"farm": {"root": str(root),
                             "layers": [[w, str(t), m] for w, t, m in layers]}})
        report: dict[str, Any] = self._answer()
        return report

    def same_tree(self, a: Path, b: Path) -> list[str]:
        """secpod.images._content.same_tree, run in the namespace (it reads every file)."""
        self._send({"compare": [str(a), str(b)]})
        diffs: list[str] = self._answer()
        return diffs

    def close(self) -> None:
        import subprocess

        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            self._in.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self._out.close()

    def __enter__(self) -> MappedUnpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unpacker(limits: Limits, hold: int | None = None) -> Any:
    """The unpacker imports use: files keep their owners (:class:`MappedUnpacker`). A
    user without subordinate ranges (who can sign, verify and export images, but not
    run them) unpacks in this process, every file theirs, and the unpack report says
    ``owners_kept: false``."""
    from secpod.errors import Error
    from secpod.sandbox import preflight

    try:
        preflight.identity()
    except Error:
        from secpod.images._farm import LocalUnpacker

        return LocalUnpacker(limits)
    return MappedUnpacker(limits, hold)


# --- the child ------------------------------------------------------------------


class _Frames:
    """One layer's framed bytes from ``src``: read() gives b"" at the end frame. The first
    read can be read again after ``seek(0)`` (LayerStream sniffs the compression)."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._left = 0
        self._end = False
        self._head: bytes | None = None  # the first read, until seek(0) or more reads
        self._replay = b""

    def _exact(self, n: int) -> bytes:
        data = self._src.read(n)
        if len(data) != n:
            raise EOFError("the parent stopped sending")
        return data

    def _raw(self, n: int) -> bytes:
        if self._end:
            return b""
        if self._left == 0:
            self._left = int.from_bytes(self._exact(4), "big")
            if self._left == 0:
                self._end = True
                return b""
        data = self._src.read(min(n, self._left))
        if not data:
            raise EOFError("the parent stopped sending")
        self._left -= len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        if self._replay:
            data, self._replay = self._replay[:n], self._replay[n:]
            return data
        data = self._raw(n)
        if self._head is None:
            self._head = data
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if pos != 0 or whence != 0 or self._head is None:
            raise ValueError("only a seek back to the start of the first read")
        self._replay, self._head = self._head, b""
        return 0

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self._raw(_FRAME):
            pass


def _mapped_count(path: str) -> int:
    """How many ids from 0 up the namespace maps without a gap (``/proc/self/uid_map``)."""
    spans = []
    with open(path) as f:
        for line in f:
            inside, _outside, size = (int(x) for x in line.split())
            spans.append((inside, size))
    end = 0
    for inside, size in sorted(spans):
        if inside != end:
            break
        end += size
    return end


def _reply(out: BinaryIO, msg: dict[str, Any]) -> None:
    out.write(json.dumps(msg).encode() + b"\n")
    out.flush()


def main() -> None:
    """The child: serve one unpack on stdin/stdout (see the module's docstring)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; EOF ends us
    src, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        _serve(src, out)
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        from secpod.errors import Error

        if isinstance(e, Error):
            info = {"type": type(e).__name__, "message": e.message, "hint": e.hint}
        elif isinstance(e, OSError):
            info = {"type": "HostError", "message": f"cannot unpack: {e}",
                    "hint": "check free space and the store's folder, then import again"}
        else:
            info = {"type": "HostError", "message": f"{type(e).__name__}: {e}", "hint": None}
        try:
            _reply(out, {"error": info})
        except OSError:
            pass
        os._exit(1)


def _serve(src: BinaryIO, out: BinaryIO) -> None:
    from pathlib import Path

    from secpod.images._farm import LocalUnpacker
    from secpod.images._unpack import Limits

    setup = json.loads(src.readline())
    owners = (_mapped_count("/proc/self/uid_map"), _mapped_count("/proc/self/gid_map"))
    with LocalUnpacker(Limits(**setup["limits"]), owners=owners) as u:
        while line := src.readline():
            msg = json.loads(line)
            if "layer" in msg:
                frames = _Frames(src)
                meta = u.apply_layer(frames, what=msg["layer"], diff_id=msg["diff_id"],
                                     root=Path(msg["root"]))
                frames.drain()
                _reply(out, {"ok": meta})
            elif "farm" in msg:
                farm = msg["farm"]
                _reply(out, {"ok": u.farm(Path(farm["root"]), [
                    (w, Path(t), m) for w, t, m in farm["layers"]])})
            elif "compare" in msg:
                from secpod.images._content import same_tree

                a, b = msg["compare"]
                _reply(out, {"ok": same_tree(Path(a), Path(b))})
