"""One audit log on disk: append under a lock, durably, with signed checkpoints.

A log directory holds::

    log.jsonl          the records, one canonical line each (append-only)
    state.json         cache: records, bytes, last leaf hash, Merkle compact range
    checkpoints.jsonl  every signed checkpoint, one JSON line {"note": ...} each
    checkpoint         the latest signed checkpoint (a C2SP signed note)
    key                the log's Ed25519 note key (private, mode 0600)
    key.vkey           its verifier key (public)
    torn/              bytes of torn final lines moved aside by recovery

Appends take an exclusive flock on log.jsonl, so concurrent writers never
interleave. The state file saves re-reading the log: it is trusted only if
the log's size and the hash of its final line match it; otherwise the log
is scanned and the state rebuilt. The state is not fsynced: the log is, and
the state is always rebuilt from the log when they disagree.
"""

from __future__ import annotations

import _thread  # threading.Lock itself, without the threading module (every run)
import errno
import fcntl
import hashlib
import json
import os
import stat
import struct
from pathlib import Path

from secpod import _files
from secpod._record import field, record
from secpod.audit import _canon, _merkle, _note
from secpod.errors import AuditError, CheckpointError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_sha256 = hashlib.sha256
_CHUNK = 1 << 24
DEFAULT_CHECKPOINT_EVERY = 100


_STATE_MAGIC = b"secpod-audit-state/1\n"
_STATE_HEAD = struct.Struct("<QQQQ32sB")


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(eq=False)
class _State:
    records: int = 0
    size: int = 0
    last_hash: str = _canon.ZERO_HASH
    last_len: int = 0
    frontier: list[bytes] = field(default_factory=list)
    checkpoint: int = 0

    def dump(self) -> bytes:
        body = _STATE_HEAD.pack(self.records, self.size, self.last_len, self.checkpoint,
                                bytes.fromhex(self.last_hash), len(self.frontier))
        body += b"".join(self.frontier)
        return _STATE_MAGIC + body + _sha256(body).digest()

    @classmethod
    def load(cls, raw: bytes) -> _State | None:
        """Parse a state file; None if it is torn, damaged or not one."""
        if not raw.startswith(_STATE_MAGIC):
            return None
        body = raw[len(_STATE_MAGIC):]
        if len(body) < _STATE_HEAD.size:
            return None
        records, size, last_len, checkpoint, last, n = _STATE_HEAD.unpack_from(body)
        end = _STATE_HEAD.size + 32 * n
        if len(body) < end + 32 or _sha256(body[:end]).digest() != body[end:end + 32]:
            return None
        frontier = [body[i:i + 32] for i in range(_STATE_HEAD.size, end, 32)]
        if n != bin(records).count("1"):
            return None
        return cls(records=records, size=size, last_hash=last.hex(), last_len=last_len,
                   frontier=frontier, checkpoint=checkpoint)


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class ScanResult:
    """What a full scan of a log found: its state, and any torn final bytes."""

    state: _State
    torn: bytes


def scan(fd: int, base: _State | None = None) -> ScanResult:
    """The state of the log open at ``fd``: ``base`` (a state known to match the log up to
    ``base.size``) carried forward over the lines after it, or rebuilt from the start."""
    st = _State() if base is None else _State(
        records=base.records, size=base.size, last_hash=base.last_hash,
        last_len=base.last_len, frontier=list(base.frontier), checkpoint=base.checkpoint)
    frontier = st.frontier
    pending = b""
    last = b""
    pos = st.size
    leaf0 = _sha256(b"\x00")
    while True:
        chunk = os.pread(fd, _CHUNK, pos)
        if not chunk:
            break
        pos += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            h = leaf0.copy()
            h.update(line)
            _merkle.append_leaf(frontier, st.records, h.digest())
            st.records += 1
            st.size += len(line) + 1
            last = line
    if st.records and (base is None or st.records != base.records):
        st.last_hash = _merkle.leaf_hash(last).hex()
        st.last_len = len(last) + 1
    return ScanResult(state=st, torn=pending)


def key_name(host: str, label: str) -> str:
    """A note key name (also the checkpoint origin) for a log of ``label`` on ``host``."""
    def clean(s: str) -> str:
        return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in s)
    return f"{clean(host) or 'localhost'}/secpod/audit/{clean(label) or 'log'}"


class LogDir:
    """An audit log directory (a user's, or the collector's host log).

    ``shared`` logs (the host log) are readable by everyone and writable by
    their owner only; private logs are the user's alone.
    """

    def __init__(self, path: Path, *, name: str, shared: bool = False,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY) -> None:
        if checkpoint_every < 1:
            raise AuditError("checkpoints must come every 1 or more records")
        self.path = path
        self.name = name
        self.shared = shared
        self.checkpoint_every = checkpoint_every
        self._key: _note.SignerKey | None = None
        # Plain strings: appends are hot, and pathlib costs more than the syscalls.
        self._log = str(path / "log.jsonl")
        self._state = str(path / "state.json")
        self._dir_checked = False
        self._fd = self._sfd = -1
        self._fd_pid = self._sfd_pid = 0
        self._fd_id = self._sfd_id = (0, 0)
        self._lfd, self._lfd_pid = -1, 0
        self._mutex = _thread.allocate_lock()
        self._mem: _State | None = None  # the state after this process's last append
        self._unsynced = -1  # an fd of the log with records appended but not yet synced

    # --- paths ---------------------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def checkpoints_file(self) -> Path:
        return self.path / "checkpoints.jsonl"

    @property
    def latest_checkpoint_file(self) -> Path:
        return self.path / "checkpoint"

    @property
    def key_file(self) -> Path:
        return self.path / "key"

    @property
    def vkey_file(self) -> Path:
        return self.path / "key.vkey"

    @property
    def torn_dir(self) -> Path:
        return self.path / "torn"

    @property
    def _file_mode(self) -> int:
        return 0o644 if self.shared else 0o600

    # --- directory and key ---------------------------------------------------

    def _ensure_dir(self) -> bool:
        """Create the directory if missing; check who owns it. Return True if created."""
        created = False
        try:
            os.mkdir(self.path, 0o755 if self.shared else 0o700)
            created = True
        except FileExistsError:
            pass
        except FileNotFoundError:
            self.path.parent.mkdir(mode=0o755 if self.shared else 0o700, parents=True,
                                   exist_ok=True)
            try:
                os.mkdir(self.path, 0o755 if self.shared else 0o700)
                created = True
            except FileExistsError:  # a concurrent first writer made it meanwhile
                pass
        st = os.lstat(self.path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise AuditError(f"{self.path} is not a directory owned by you",
                             hint="the audit log lives in a directory only its owner writes")
        if st.st_mode & 0o022:
            raise AuditError(f"{self.path} is writable by other users",
                             hint=f"chmod go-w {self.path}")
        if created:
            _fsync_dir(self.path.parent)
        return created

    def _write_new_file(self, path: Path, data: bytes, mode: int, *, sync: bool = True) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            try:
                os.fchmod(fd, mode)
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write (disk full?)")
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:  # a key, checkpoint or torn line is whole or not there at all
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def signer(self, *, create: bool = True) -> _note.SignerKey:
        """The log's private key; created (with its vkey file) when missing and ``create``.

        Raises CheckpointError if the key file is malformed, AuditError if it is missing
        and ``create`` is false.
        """
        if self._key is not None:
            return self._key
        try:
            text = self.key_file.read_text()
        except FileNotFoundError:
            if not create:
                raise AuditError(f"the log's key {self.key_file} is missing") from None
            key = _note.SignerKey.generate(self.name)
            self._write_new_file(self.key_file, (str(key) + "\n").encode(), 0o600)
            self._write_new_file(self.vkey_file, (str(key.verifier()) + "\n").encode(), 0o644)
            _fsync_dir(self.path)
            self._key = key
            return key
        except OSError as e:
            raise AuditError(f"cannot read the log's key {self.key_file}: {e.strerror}") from e
        self._key = _note.SignerKey.parse(text)
        return self._key

    def ensure_key(self) -> _note.VerifierKey:
        """Create the directory and key if missing (under the log lock); return the vkey."""
        with self._locked() as (fd, _created):
            key = self.signer()
            if not self.vkey_file.exists():
                self._write_new_file(self.vkey_file, (str(key.verifier()) + "\n").encode(),
                                     0o644)
            return key.verifier()

    # --- locking and state ---------------------------------------------------

    class _Lock:
        def __init__(self, log: LogDir) -> None:
            self.log = log
            self.fd = -1

        def __enter__(self) -> tuple[int, bool]:
            log = self.log
            log._mutex.acquire()  # threads of one process share the fd, and flock with it
            try:
                fd, created = log._open_log()
                fcntl.flock(log._lock_fd() if log.shared else fd, fcntl.LOCK_EX)
            except BaseException:
                log._mutex.release()
                raise
            self.fd = fd
            return fd, created

        def __exit__(self, *exc: object) -> None:
            try:
                log = self.log
                fcntl.flock(log._lock_fd() if log.shared else self.fd, fcntl.LOCK_UN)
            finally:
                self.log._mutex.release()

    def _locked(self) -> LogDir._Lock:
        return LogDir._Lock(self)

    def _lock_fd(self) -> int:
        """A shared log's lock: the file ``lock`` (mode 0600), which other users cannot
        open. Its log is world-readable, and a reader's shared flock on it would block
        every append."""
        pid = os.getpid()
        if self._lfd >= 0 and self._lfd_pid == pid:
            return self._lfd
        if self._lfd >= 0:
            os.close(self._lfd)
        fd = os.open(self.path / "lock",
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            os.close(fd)
            raise AuditError(f"{self.path / 'lock'} is not a private file owned by you")
        self._lfd, self._lfd_pid = fd, pid
        return fd

    def _open_state(self) -> int:
        """The state file's fd, kept like the log's (only used under the log's lock)."""
        pid = os.getpid()
        if self._sfd >= 0:
            if self._sfd_pid == pid:
                try:
                    st = os.lstat(self._state)
                except FileNotFoundError:
                    st = None
                if st is not None and (st.st_dev, st.st_ino) == self._sfd_id:
                    return self._sfd
            os.close(self._sfd)
            self._sfd = -1
        fd = os.open(self._state, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     self._file_mode)
        st = os.fstat(fd)
        self._sfd, self._sfd_pid, self._sfd_id = fd, pid, (st.st_dev, st.st_ino)
        return fd

    def _open_log(self) -> tuple[int, bool]:
        """The log's fd, kept open across appends of this process while the path still
        names the same file; (re)opened (and created) otherwise."""
        pid = os.getpid()
        if self._fd >= 0:
            if self._fd_pid == pid:
                try:
                    st = os.lstat(self._log)
                except FileNotFoundError:
                    st = None
                if st is not None and (st.st_dev, st.st_ino) == self._fd_id:
                    return self._fd, False
            # Replaced, removed, or inherited across fork(): a child must not share the
            # parent's open file description, or their flocks would not exclude each other.
            os.close(self._fd)
            self._fd = -1
        created = False
        if not self._dir_checked:
            created = self._ensure_dir()
            self._dir_checked = True
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self._log, flags)
        except FileNotFoundError:
            created = self._ensure_dir() or created
            try:
                fd = os.open(self._log, flags | os.O_CREAT | os.O_EXCL, self._file_mode)
                created = True
            except FileExistsError:
                fd = os.open(self._log, flags)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise AuditError(f"{self._log} is not a file owned by you")
        self._fd, self._fd_pid, self._fd_id = fd, pid, (st.st_dev, st.st_ino)
        return fd, created

    def _read_state(self, fd: int, size: int) -> _State | None:
        """The saved state if the log open at ``fd`` (of ``size`` bytes) still holds, at the
        state's offset, the record it names last; the log may have grown since."""
        mem = self._mem
        if mem is not None and mem.size == size and self._tail_matches(fd, mem):
            return mem  # this process wrote the last record, and it is still there
        try:
            raw = os.pread(self._open_state(), 4096, 0)
        except OSError:
            return None
        st = _State.load(raw)
        if st is None or st.size > size:
            return None
        return st if self._tail_matches(fd, st) else None

    @staticmethod
    def _tail_matches(fd: int, st: _State) -> bool:
        """Whether the log at ``fd`` holds, ending at ``st.size``, the line ``st`` names last."""
        if st.records == 0:
            return st.size == 0
        start = st.size - st.last_len
        if start < 0:
            return False
        tail = os.pread(fd, st.last_len + 1, start - 1) if start else os.pread(fd, st.last_len, 0)
        if start:
            if tail[:1] != b"\n":
                return False
            tail = tail[1:]
        if len(tail) != st.last_len or not tail.endswith(b"\n"):
            return False
        return _merkle.leaf_hash(tail[:-1]).hex() == st.last_hash

    def _saved_records(self) -> int | None:
        try:
            st = _State.load(self.state_file.read_bytes())
        except OSError:
            return None
        return st.records if st else None

    def _write_state(self, st: _State) -> None:
        data = st.dump()
        # Rewritten in place and never truncated: the checksum inside tells
        # where it ends, and a torn write just means a rebuild from the log.
        os.pwrite(self._open_state(), data, 0)

    # --- append --------------------------------------------------------------

    def append(self, body: dict[str, Any], *, checkpoint: bool = False,
               durable: bool = True) -> dict[str, Any]:
        """Append ``body`` as the next record, durably, and return it with seq and prev.

        Recovers first if the log ends in a torn line or the state is stale (and
        records that it did). Signs a checkpoint every ``checkpoint_every``
        records and when ``checkpoint`` is true.
        ``durable=False`` writes the record (it survives this process being killed)
        but leaves the sync to the next durable append, checkpoint or :meth:`flush`
        (group commit: the caller flushes before the action's result is reported).
        Raises AuditError if the log cannot be written.
        """
        try:
            with self._locked() as (fd, created):
                if created:
                    self.signer()
                size = os.fstat(fd).st_size
                st = self._read_state(fd, size)
                if st is None or st.size != size:
                    st = self._recover(fd, st)
                rec = self._append_locked(fd, st, body)
                synced = False
                if checkpoint or st.records % self.checkpoint_every == 0:
                    self._checkpoint_locked(fd, st)  # syncs the log first
                    self._drop_unsynced()
                    synced = True
                self._write_state(st)
                self._mem = st
                durable = durable or created
                if not (durable or synced) and self._unsynced < 0:
                    self._unsynced = os.dup(fd)
                sync_fd = os.dup(fd) if durable and not synced else -1
            if sync_fd < 0:
                if created:
                    _fsync_dir(self.path)
                return rec
            # Synced after the lock is released: writers that queued on the lock meanwhile
            # sync too, and the filesystem makes one journal commit of them all (group
            # commit). Nothing returns before its own record is on disk, and whatever a
            # record chains to was written earlier in the same file, so it is on disk too
            # (records this process deferred among them).
            try:
                os.fdatasync(sync_fd)
            finally:
                os.close(sync_fd)
            self._drop_unsynced()
            if created:
                _fsync_dir(self.path)
            return rec
        except OSError as e:
            raise AuditError(
                f"cannot write the audit log {self.log_file}: {e.strerror or e}",
                hint="secpod does not act without an audit record; fix the log's directory",
            ) from e

    def flush(self) -> None:
        """Make every record this process appended with ``durable=False`` durable.
        Raises AuditError if the log cannot be synced."""
        if self._unsynced < 0:
            return
        try:
            os.fdatasync(self._unsynced)
        except OSError as e:
            raise AuditError(f"cannot write the audit log {self.log_file}: {e.strerror or e}",
                             hint="secpod does not act without an audit record; fix the "
                                  "log's directory") from e
        self._drop_unsynced()

    def _drop_unsynced(self) -> None:
        if self._unsynced >= 0:
            os.close(self._unsynced)
            self._unsynced = -1

    def _append_locked(self, fd: int, st: _State, body: dict[str, Any]) -> dict[str, Any]:
        line = _canon.encode(st.records, st.last_hash, body)
        data = line + b"\n"
        n = os.write(fd, data)
        if n != len(data):
            raise OSError(errno.ENOSPC, "short write (disk full?)")
        h = _sha256(b"\x00" + line).digest()
        rec = {"seq": st.records, "prev": st.last_hash, **body}
        _merkle.append_leaf(st.frontier, st.records, h)
        st.records += 1
        st.size += len(data)
        st.last_hash = h.hex()
        st.last_len = len(data)
        return rec

    def _recover(self, fd: int, base: _State | None) -> _State:
        """Bring the state up to the log's end (from ``base``, a state that matches the log
        so far, or from the start); move a torn final line aside and say so."""
        result = scan(fd, base)
        st = result.state
        saved = self._saved_records() if base is None else None
        notes: list[str] = []
        details: dict[str, Any] = {}
        if result.torn:
            torn = result.torn
            digest = _sha256(torn).hexdigest()
            self.torn_dir.mkdir(mode=0o700, exist_ok=True)
            aside = self.torn_dir / f"{st.records}-{digest[:16]}.bin"
            self._write_new_file(aside, torn, 0o600)
            _fsync_dir(self.torn_dir)
            os.ftruncate(fd, st.size)
            os.fsync(fd)
            notes.append(f"the log ended in a torn line ({len(torn)} bytes without a newline, "
                         f"a write that never completed after record {st.records - 1}); "
                         f"moved it to {aside}")
            details.update(torn_bytes=len(torn), torn_sha256=digest, moved_to=str(aside))
        if saved is not None and saved > st.records:
            notes.append(f"the log holds {st.records} records but {saved} were written: "
                         f"records were removed from its end")
            details.update(records_written=saved, records_found=st.records)
        if notes:
            self._append_locked(fd, st, _recovery_body("; ".join(notes), details))
            self._write_state(st)
        return st

    # --- checkpoints ---------------------------------------------------------

    def checkpoint(self) -> str:
        """Sign a checkpoint of the log as it is now and return the note.

        Raises AuditError if the log cannot be written.
        """
        try:
            with self._locked() as (fd, created):
                key = self.signer()
                size = os.fstat(fd).st_size
                st = self._read_state(fd, size)
                if st is None or st.size != size:
                    st = self._recover(fd, st)
                note = self._checkpoint_locked(fd, st, key)
                self._write_state(st)
                if created:
                    _fsync_dir(self.path)
                return note
        except OSError as e:
            raise AuditError(f"cannot write a checkpoint of {self.log_file}: {e.strerror}") from e

    def _checkpoint_locked(self, fd: int, st: _State, key: _note.SignerKey | None = None
                           ) -> str:
        # A checkpoint must never cover a record that is not yet on disk.
        os.fdatasync(fd)
        try:
            key = key or self.signer()
        except CheckpointError as e:
            raise AuditError(f"cannot sign a checkpoint: {e.message}",
                             hint=f"the key {self.key_file} is damaged; move it aside and "
                                  "a new key is made (verify then names the change of key)") from e
        text = _note.checkpoint_text(key.name, st.records, _merkle.frontier_root(st.frontier),
                                     _canon.now())
        note = key.sign_note(text)
        line = json.dumps({"note": note}, ensure_ascii=True, separators=(",", ":")).encode()
        fd = os.open(self.checkpoints_file,
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     self._file_mode)
        try:
            os.write(fd, line + b"\n")
            os.fdatasync(fd)
        finally:
            os.close(fd)
        # A convenience copy of what checkpoints.jsonl already holds durably.
        self._write_new_file(self.latest_checkpoint_file, note.encode(), self._file_mode,
                             sync=False)
        st.checkpoint = st.records
        return note

    # --- reading ---------------------------------------------------------------

    def verifier(self) -> _note.VerifierKey | None:
        """The log's verifier key from key.vkey, else from its private key; None if neither."""
        # Bounded reads of regular files only: an administrator verifies users' folders.
        try:
            return _note.VerifierKey.parse(_files.read_limited(self.vkey_file, 1 << 16).decode(
                errors="replace"))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise AuditError(f"cannot read {self.vkey_file}: {e.strerror}") from e
        try:
            return _note.SignerKey.parse(_files.read_limited(self.key_file, 1 << 16).decode(
                errors="replace")).verifier()
        except (FileNotFoundError, PermissionError):
            return None
        except OSError as e:
            raise AuditError(f"cannot read {self.key_file}: {e.strerror}") from e


def _recovery_body(reason: str, details: dict[str, Any]) -> dict[str, Any]:
    import pwd
    import socket

    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return {
        "time": _canon.now(), "host": socket.gethostname(), "uid": uid, "user": user,
        "action": "audit.recover", "outcome": "ok", "reason": reason,
        "container": {"id": None, "name": None}, "image": {"ref": None, "digest": None},
        "profile": None, "profile_hash": None, "confinement": None, "trust": None,
        "exit_status": None, "details": details,
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
