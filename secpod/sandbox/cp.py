"""``secpod cp``: files between the host and a container's root (docs/storage-cp-diff-commit.md).

One mechanism for every container: the copy goes through the container's own view of
its root, by a process that is root of a user namespace mapped as the containers are
(``userns.call_mapped``), so that files of any container uid can be read and are made
with container ids:

- a container that runs (or is created) is reached through its init's
  ``/proc/PID/root``, opened here, where the host may open it, and handed to that
  process as a descriptor; it sees the overlay, the volumes and the tmpfs mounts as the
  container does;
- a stopped container with a writable root gets its overlay mounted again (the image's
  tree under its ``upper/``) in a private mount namespace of that process, which ends
  with it; the container's lock is held meanwhile, so no ``start`` mounts it twice;
- a stopped container with a read-only root (strict) is read from the image's tree.

Writes therefore land where the container's own would: in ``upper/`` (the kernel's
overlay copies up), never in the image's tree. Inside the container every path is
walked by descriptor as ``openat2(RESOLVE_IN_ROOT)`` resolves it
(``rootfs._Walk``): a symbolic link, absolute or with ``..``, stays inside the root.
Devices, sockets and setuid/setgid files are refused (the whole source is checked
before anything is written); what is copied is made under a temporary name and renamed
into place at the end, so nothing half-copied ever has its final name.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path, PurePosixPath

from secpod.errors import Conflict, Error, HostError, NotFound, Refused, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TMP = ".secpod-cp-"


def shown(path: str) -> str:
    """A path from a container as it may be printed: control characters escaped (a
    hostile name must not drive the terminal), bytes that are no UTF-8 as ``\\xNN``."""
    from secpod._text import printable

    return printable(path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def split_arg(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a host path -> (None, path). A host path
    with a colon is written ``./a:b`` or ``/a:b``, as Docker wants."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path


def copy(src: str, dst: str, *, follow: bool = False, archive: bool = False
         ) -> dict[str, Any]:
    """Copy ``src`` to ``dst``, one of them ``CONTAINER:PATH``; audited as ``container.cp``.

    ``follow``: a symbolic link named as the source is followed (inside the container's
    root for a container source), else copied as a link. ``archive`` (Docker's ``-a``,
    the source's numeric owners kept) is refused: the ids of one side mean other users
    on the other. Returns what was copied.
    Raises UsageError, NotFound, Conflict (a read-only root, a path under a mount of a
    stopped container), Refused (a device or setuid file), HostError."""
    from secpod.sandbox import state

    (sc, sp), (dc, dp) = split_arg(src), split_arg(dst)
    if (sc is None) == (dc is None):
        raise UsageError("secpod cp copies between a container and the host: one of the "
                         "two paths is CONTAINER:PATH",
                         hint="secpod cp web:/etc/nginx/nginx.conf .  or  "
                              "secpod cp ./site web:/usr/share/nginx/html")
    if "-" in (sp, dp):
        raise UsageError("secpod cp does not stream tar archives through - ",
                         hint="give a host path; secpod export or save make archives")
    name = sc if sc is not None else dc
    assert name is not None
    ctr = state.lookup(name)
    direction = "out" if sc is not None else "in"
    cpath, hpath = (sp, dp) if direction == "out" else (dp, sp)
    details: dict[str, Any] = {"direction": direction, "container_path": cpath,
                               "host_path": os.path.abspath(hpath), "follow": follow}
    from secpod.sandbox import events

    try:
        if archive:
            raise Refused("secpod cp -a (keep the source's uids and gids) is refused: ids "
                          "of the host are other users in the container, and a "
                          "container's ids are subordinate ids of yours on the host",
                          hint="leave out -a: files copied in belong to container root, "
                               "copied out to you; chown in the container if needed")
        result = _copy(ctr, direction, cpath, hpath, follow, details)
    except Error as e:
        outcome = "refused" if isinstance(e, (Refused, Conflict)) else "error"
        events.container("container.cp", ctr, outcome, reason=e.message, details=details)
        raise
    details.update(result)
    events.container("container.cp", ctr, details=details)
    return result


def _copy(ctr: Container, direction: str, cpath: str, hpath: str, follow: bool,
          details: dict[str, Any]) -> dict[str, Any]:
    from secpod.sandbox import bundle, userns

    if not cpath.startswith("/"):
        cpath = "/" + cpath
    # (a changed bundle is refused, and audited once, by copy's handler)
    config = bundle.checked_config(ctr.bundle, ctr.config_digest, ctr.name)
    if direction == "in" and not ctr.root_lower:
        raise Conflict(f"container {ctr.name} has a read-only root (profile {ctr.profile}): "
                       "nothing can be copied into it",
                       hint="run it with a writable root (--profile default) or give it "
                            "a volume (-v NAME:/data) and copy into that volume's folder")
    contents = direction == "in" and (hpath == "." or hpath.endswith("/."))
    host = os.path.abspath(hpath) + ("/" if hpath.endswith("/") else "")
    job = {"direction": direction, "container_path": cpath, "host_path": host,
           "follow": follow, "contents": contents}

    root_fd = _running_root(ctr)
    if root_fd == _CREATED:
        # Its overlay is mounted in a namespace the host cannot enter yet, and a second
        # mount of the same upper folder would go unseen by it (and reset its work
        # folder): it is read from the image's tree, which is all it has, and not written.
        if direction == "in":
            raise Conflict(f"container {ctr.name} is created and not started: secpod cp "
                           "copies into a running or a stopped container",
                           hint=f"secpod start {ctr.name} first (a container that exits at "
                                "once can be copied into once it has stopped)")
        details["via"] = "image"
        job["root"] = {"tree": ctr.root_lower or str(config["root"]["path"])}
        return _call(userns, job, ())
    if root_fd is not None:
        details["via"] = "running"
        try:
            job["root"] = {"fd": root_fd}
            return _call(userns, job, (root_fd,))
        finally:
            os.close(root_fd)
    with ctr.locked():
        if ctr.live_pid() is not None:  # started meanwhile: through it
            return _copy(ctr.reload(), direction, cpath, hpath, follow, details)
        _refuse_mounted(ctr, cpath, config)
        if ctr.root_lower:
            details["via"] = "overlay"
            job["root"] = {"overlay": [ctr.root_lower, str(ctr.dir / "upper"),
                                       str(ctr.dir / "work"), str(ctr.dir / "merged")]}
        else:
            details["via"] = "image"
            job["root"] = {"tree": str(config["root"]["path"])}
        return _call(userns, job, ())


def _call(userns: Any, job: dict[str, Any], fds: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = userns.call_mapped("secpod.sandbox.cp:child", json.dumps(job),
                                             timeout=3600, pass_fds=fds)
    return out


_CREATED = -2


def _running_root(ctr: Container) -> int | None:
    """A descriptor of the running container's root (its init's ``/proc/PID/root``),
    None when it does not run, or :data:`_CREATED` for a container created and not
    started: it has only the runtime's own init, which the host may not look into (it
    is not dumpable until it runs the container's command)."""
    pid = ctr.live_pid()
    if pid is None:
        return None
    try:
        return os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except PermissionError as e:
        if not ctr.started:
            return _CREATED
        raise HostError(f"cannot reach the root of container {ctr.name}: {e.strerror}",
                        hint="it may be starting or ending: run the command again") from e
    except OSError as e:
        raise HostError(f"cannot reach the root of container {ctr.name}: {e.strerror}",
                        hint="it may have ended meanwhile: run the command again") from e


def _refuse_mounted(ctr: Container, cpath: str, config: dict[str, Any]) -> None:
    """A stopped container has no volumes or tmpfs mounted: a path under one of its
    mount points would copy into (or out of) what the mount hides."""
    path = PurePosixPath(os.path.normpath(cpath))
    for m in config.get("mounts") or []:
        dest = PurePosixPath(os.path.normpath(str(m.get("destination", "/"))))
        if str(dest) != "/" and (path == dest or dest in path.parents):
            raise Conflict(f"{cpath} is under {dest}, a mount of container {ctr.name} "
                           f"({m.get('type', 'bind')}), which is not mounted while it is "
                           "stopped",
                           hint=f"secpod start {ctr.name} and copy again, or copy to or "
                                "from the volume's own folder")


# --- the child: root of a mapped user namespace -------------------------------------


def child(job_json: str) -> dict[str, Any]:
    """Run one copy (``job_json`` as :func:`_copy` makes it); a report of what was
    copied. Raises Error subclasses (OSError becomes HostError)."""
    job = json.loads(job_json)
    try:
        root = _root(job["root"])
        if job["direction"] == "out":
            return _copy_out(root, job["container_path"], job["host_path"], job["follow"])
        return _copy_in(root, job["host_path"], job["container_path"], job["follow"],
                        job["contents"])
    except FileNotFoundError as e:
        raise NotFound(f"cannot copy: {e.strerror} "
                       f"({shown(str(e.filename or job['container_path']))})",
                       hint="a link in the container may lead to a path that is not "
                            "there from outside it (its /proc)") from e
    except OSError as e:
        raise HostError(f"cannot copy: {e.strerror or e}"
                        + (f" ({e.filename})" if e.filename else ""),
                        hint="check free space and the destination's folder; nothing "
                             "half-copied was left under its final name") from e


def _root(spec: dict[str, Any]) -> Path:
    if "fd" in spec:
        return Path(f"/proc/self/fd/{spec['fd']}")
    if "tree" in spec:
        return Path(spec["tree"])
    import ctypes

    from secpod.network import _holder

    lower, upper, work, merged = spec["overlay"]
    try:
        if _holder._libc.unshare(_holder.CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare a mount namespace")
        fds = [os.open(p, _DIR) for p in (lower, upper, work, merged)]
        lo, up, wk, tg = (f"/proc/self/fd/{fd}".encode() for fd in fds)
        _holder._mount_overlay(lo, up, wk, tg)
    except OSError as e:
        raise HostError(f"cannot mount the stopped container's overlay root: "
                        f"{os.strerror(e.errno or 0)}",
                        hint="secpod doctor checks that overlay mounts in a user "
                             "namespace") from e
    return Path(merged)


def _base(path: str) -> str:
    """The name a copy of ``path`` takes in a destination folder ("" for a root)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return parts[-1] if parts and parts[-1] != ".." else ""


def _copy_out(root: Path, cpath: str, hpath: str, follow: bool) -> dict[str, Any]:
    from secpod.sandbox.rootfs import _Missing, _Walk

    contents = cpath.endswith("/.")
    try:
        walk = _Walk(root, cpath, follow_last=follow)
    except _Missing:
        raise NotFound(f"no such file or folder in the container: {cpath}") from None
    with walk:
        sfd, sname = walk.dirfd, walk.name
        try:
            st = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound(f"no such file or folder in the container: {cpath}") from None
        if cpath.endswith("/") and not stat.S_ISDIR(st.st_mode):
            raise NotFound(f"{cpath} is not a folder in the container")
        counts = _scan(sfd, sname, cpath.rstrip("/") or "/")
        base = _base(cpath)
        target = Path(hpath)
        if stat.S_ISDIR(st.st_mode) and (contents or not base):
            target.mkdir(exist_ok=True)
            _merge(sfd, sname, target)
        elif target.is_dir():
            _into(sfd, sname, target, base)
        else:
            if hpath.endswith("/"):
                raise NotFound(f"no such folder on the host: {hpath}")
            _into(sfd, sname, target.parent, target.name)
    return counts


def _copy_in(root: Path, hpath: str, cpath: str, follow: bool, contents: bool
             ) -> dict[str, Any]:
    from secpod.sandbox.rootfs import _Missing, _Walk

    src = Path(hpath.rstrip("/") or "/")
    try:
        st = os.stat(src, follow_symlinks=follow)
    except FileNotFoundError:
        raise NotFound(f"no such file or folder on the host: {hpath}") from None
    parent = src if (contents and stat.S_ISDIR(st.st_mode)) else src.parent
    sname = "." if parent == src else src.name
    if follow and stat.S_ISLNK(os.lstat(src).st_mode) and sname != ".":
        parent, sname = Path(os.path.realpath(src)).parent, Path(os.path.realpath(src)).name
    sfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        counts = _scan(sfd, sname, str(src))
        try:
            walk = _Walk(root, cpath)
        except _Missing:
            raise NotFound(f"no such folder in the container: "
                           f"{str(PurePosixPath(cpath).parent)}") from None
        with walk:
            dfd, dname = walk.dirfd, walk.name
            try:
                dst = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                dst = None
            if dst is None and cpath.endswith("/"):
                raise NotFound(f"no such folder in the container: {cpath}")
            if dst is not None and stat.S_ISDIR(dst.st_mode):
                if sname == ".":
                    _merge_fd(sfd, ".", dfd, dname)
                else:
                    inner = os.open(dname, _DIR, dir_fd=dfd)
                    try:
                        _place(sfd, sname, inner, src.name)
                    finally:
                        os.close(inner)
            else:
                _place(sfd, sname, dfd, dname)
    finally:
        os.close(sfd)
    return counts


def _scan(dfd: int, name: str, label: str) -> dict[str, Any]:
    """Check everything that would be copied, before anything is; how much there is.
    Raises Refused for a device, a socket, or a setuid or setgid file."""
    counts = {"files": 0, "folders": 0, "links": 0, "bytes": 0}

    def visit(fd: int, leaf: str, where: str) -> None:
        st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        _allowed(st, where)
        if stat.S_ISDIR(st.st_mode):
            counts["folders"] += 1
            sub = os.open(leaf, _DIR, dir_fd=fd)
            try:
                for entry in sorted(os.listdir(sub)):
                    visit(sub, entry, f"{where.rstrip('/')}/{entry}")
            finally:
                os.close(sub)
        elif stat.S_ISLNK(st.st_mode):
            counts["links"] += 1
        else:
            counts["files"] += 1
            counts["bytes"] += st.st_size

    visit(dfd, name, label)
    return counts


def _allowed(st: os.stat_result, where: str) -> None:
    mode = st.st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        where = shown(where)
        raise Refused(f"{where} is a device: secpod cp copies no device nodes",
                      hint="copy the files you need, not the device")
    if stat.S_ISSOCK(mode):
        raise Refused(f"{shown(where)} is a socket, which cannot be copied")
    if not stat.S_ISDIR(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
        where = shown(where)
        raise Refused(f"{where} is setuid or setgid: secpod cp copies no such files",
                      hint=f"remove the bit first (chmod u-s,g-s {where}) if the file "
                           "does not need it")


def _into(sfd: int, sname: str, folder: Path, name: str) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _place(sfd, sname, dfd, name)
    finally:
        os.close(dfd)


def _merge(sfd: int, sname: str, folder: Path) -> None:
    parent = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _merge_fd(sfd, sname, parent, folder.name)
    finally:
        os.close(parent)


def _merge_fd(sfd: int, sname: str, dfd: int, dname: str) -> None:
    """The entries of folder ``sname`` placed in the existing folder ``dname``."""
    src = os.open(sname, _DIR, dir_fd=sfd)
    try:
        dst = os.open(dname, _DIR, dir_fd=dfd)
        try:
            for entry in sorted(os.listdir(src)):
                _place(src, entry, dst, entry)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _place(sfd: int, sname: str, dfd: int, dname: str) -> None:
    """Copy ``sname`` to ``dname``: a folder into an existing folder entry by entry,
    anything else made under a temporary name and renamed over ``dname``."""
    st = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
    try:
        dst = os.stat(dname, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        dst = None
    if dst is not None and stat.S_ISDIR(dst.st_mode) != stat.S_ISDIR(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(dst.st_mode) else "a file"
        raise Conflict(f"cannot copy over {shown(dname)}: it is {kind} and the source is "
                       "not",
                       hint="remove it first, or copy to another name")
    if dst is not None and stat.S_ISDIR(st.st_mode):
        _merge_fd(sfd, sname, dfd, dname)
        return
    tmp = f"{_TMP}{os.getpid()}-{dname}"[:255]
    try:
        _make(sfd, sname, dfd, tmp)
        os.rename(tmp, dname, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        _remove(dfd, tmp)
        raise


def _make(sfd: int, sname: str, dfd: int, dname: str) -> None:
    """A copy of ``sname`` (not there before) as ``dname``: modes and times kept, owned by
    the copier (container root inside a container, the user on the host)."""
    st = os.stat(sname, dir_fd=sfd, follow_symlinks=False)
    _allowed(st, sname)          # again: the source may have changed since the scan
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dname, 0o700, dir_fd=dfd)
        src = os.open(sname, _DIR, dir_fd=sfd)
        try:
            dst = os.open(dname, _DIR, dir_fd=dfd)
            try:
                for entry in sorted(os.listdir(src)):
                    _make(src, entry, dst, entry)
                os.chmod(dst, mode)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dst)
        finally:
            os.close(src)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(sname, dir_fd=sfd), dname, dir_fd=dfd)
        os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd,
                 follow_symlinks=False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dname, mode, dir_fd=dfd)
        os.chmod(dname, mode, dir_fd=dfd, follow_symlinks=True)
    else:
        _copy_file(sfd, sname, dfd, dname, st)


def _copy_file(sfd: int, sname: str, dfd: int, dname: str, st: os.stat_result) -> None:
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                  dir_fd=sfd)
    try:
        now = os.fstat(src)
        if not stat.S_ISREG(now.st_mode) or now.st_ino != st.st_ino:
            raise Conflict(f"{shown(sname)} changed while it was copied",
                           hint="copy it again")
        _allowed(now, sname)
        dst = os.open(dname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            try:
                while os.copy_file_range(src, dst, 1 << 30):
                    pass
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                _copy_plain(src, dst)   # on from where copy_file_range left both offsets
            os.fchmod(dst, stat.S_IMODE(now.st_mode))
            os.utime(dst, ns=(now.st_atime_ns, now.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_plain(src: int, dst: int) -> None:
    while data := os.read(src, 1 << 20):
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]


def _remove(dfd: int, name: str) -> None:
    """Remove ``name`` (a file, a link or a tree) under ``dfd``, never following a link."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        try:
            sub = os.open(name, _DIR, dir_fd=dfd)
        except OSError:
            return
        try:
            for entry in os.listdir(sub):
                _remove(sub, entry)
        finally:
            os.close(sub)
        try:
            os.rmdir(name, dir_fd=dfd)
        except OSError:
            pass
        return
    try:
        os.unlink(name, dir_fd=dfd)
    except OSError:
        pass
