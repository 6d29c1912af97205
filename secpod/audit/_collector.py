"""The host's audit collector: one root process, one unix socket, one host log.

Protocol: the client sends one JSON object per line,
``{"v": 1, "record": {...}, "checkpoint": bool}``; the collector answers one
line, ``{"ok": true, "seq": N}`` once the host record is on disk, or
``{"ok": false, "error": "..."}``. The collector takes the sender's identity
from the socket (SO_PEERCRED), never from the record: a record whose uid or
user is not the peer's is written as an ``audit.forgery`` record under the
peer's real uid and refused.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from secpod.audit import _canon, _quota, _store
from secpod.errors import AuditError, CollectorError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 1 << 20
MAX_CONNECTIONS_PER_UID = 16
READ_TIMEOUT = 10.0  # seconds for a whole line to arrive
_CRED = struct.Struct("3i")
_ACTION_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")
_OUTCOMES = ("ok", "refused", "error")
_CONTENT_ACTIONS = ("image.import", "image.pull", "image.verify")  # records with a content digest


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return pid, uid, gid


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# --- client ------------------------------------------------------------------


class CollectorClient:
    """A connection to the collector, checked to be root's.

    Raises CollectorError when the socket is missing, not a socket, not owned
    by root, refuses or does not answer.
    """

    def __init__(self, path: Path, *, timeout: float = 5.0) -> None:
        self.path = path
        hint = "ask the administrator to start it: systemctl start secpod-audit-collector"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise CollectorError(f"the audit collector's socket {path} does not exist",
                                 hint=hint) from None
        except OSError as e:
            raise CollectorError(f"cannot reach the audit collector at {path}: {e.strerror}",
                                 hint=hint) from e
        if not stat.S_ISSOCK(st.st_mode):
            raise CollectorError(f"{path} is not a socket")
        if st.st_uid != 0:
            raise CollectorError(
                f"the audit collector's socket {path} is owned by uid {st.st_uid}, not root",
                hint="someone other than the administrator made it; tell the administrator")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except ConnectionRefusedError:
            self.sock.close()
            raise CollectorError(f"the audit collector at {path} is not running "
                                 "(connection refused)", hint=hint) from None
        except TimeoutError:
            self.sock.close()
            raise CollectorError(f"the audit collector at {path} does not answer",
                                 hint=hint) from None
        except OSError as e:
            self.sock.close()
            raise CollectorError(f"cannot connect to the audit collector at {path}: "
                                 f"{e.strerror}", hint=hint) from e
        _pid, uid, _gid = peer_credentials(self.sock)
        if uid != 0:
            self.sock.close()
            raise CollectorError(f"the process behind {path} runs as uid {uid}, not root",
                                 hint="someone other than the administrator is listening there")
        self._buf = b""

    def submit(self, rec: dict[str, Any], *, checkpoint: bool = False) -> int:
        """Send one record; return its sequence number in the host log.

        Raises CollectorError if the collector refuses it or does not answer.
        """
        answer = self.request({"record": rec, "checkpoint": checkpoint}, what="the record")
        seq = answer.get("seq")
        return seq if isinstance(seq, int) else -1

    def request(self, message: dict[str, Any], *, what: str = "the request") -> dict[str, Any]:
        """Send one version 1 message; return the answer. Raises CollectorError if the
        collector refuses it or does not answer."""
        msg = json.dumps({"v": 1, **message},
                         separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
        try:
            self.sock.sendall(msg)
            while b"\n" not in self._buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise CollectorError(f"the audit collector at {self.path} closed the "
                                         "connection without an answer (did it crash?)")
                self._buf += chunk
                if len(self._buf) > MAX_LINE:
                    raise CollectorError("the audit collector's answer is too long")
        except TimeoutError:
            raise CollectorError(f"the audit collector at {self.path} does not answer") from None
        except OSError as e:
            raise CollectorError(f"lost the audit collector at {self.path}: {e.strerror}") from e
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError as e:
            raise CollectorError("the audit collector answered something that is not JSON") from e
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            err = answer.get("error") if isinstance(answer, dict) else None
            raise CollectorError(f"the audit collector refused {what}: {err}")
        return answer

    def close(self) -> None:
        self.sock.close()


# --- server ------------------------------------------------------------------


def _opt_str(v: Any, name: str, limit: int = 4096) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise ValueError(f"{name} must be a string of at most {limit} characters")
    return v


def _opt_obj(v: Any, name: str) -> dict[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError(f"{name} must be an object")
    return v


def _pair(v: Any, name: str, keys: tuple[str, str]) -> dict[str, str | None]:
    obj = _opt_obj(v, name) or {}
    return {k: _opt_str(obj.get(k), f"{name}.{k}", 1024) for k in keys}


def validate_submission(rec: Any) -> dict[str, Any]:
    """Check a submitted record's shape; return the fields the host log keeps.

    Raises ValueError naming the first field that is wrong.
    """
    if not isinstance(rec, dict):
        raise ValueError("the record must be a JSON object")
    action = rec.get("action")
    if not isinstance(action, str) or len(action) > 100 or not _ACTION_RE.match(action):
        raise ValueError("action must be a dotted lower-case name")
    if rec.get("outcome") not in _OUTCOMES:
        raise ValueError("outcome must be ok, refused or error")
    uid = rec.get("uid")
    if not isinstance(uid, int) or isinstance(uid, bool):
        raise ValueError("uid must be an integer")
    if not isinstance(rec.get("user"), str):
        raise ValueError("user must be a string")
    exit_status = rec.get("exit_status")
    if exit_status is not None and (not isinstance(exit_status, int)
                                    or isinstance(exit_status, bool)):
        raise ValueError("exit_status must be an integer or null")
    seq = rec.get("seq")
    body = {
        "action": action,
        "outcome": rec["outcome"],
        "reason": _opt_str(rec.get("reason"), "reason"),
        "container": _pair(rec.get("container"), "container", ("id", "name")),
        "image": _pair(rec.get("image"), "image", ("ref", "digest")),
        "profile": _opt_str(rec.get("profile"), "profile", 256),
        "profile_hash": _opt_str(rec.get("profile_hash"), "profile_hash", 256),
        "confinement": _opt_obj(rec.get("confinement"), "confinement"),
        "trust": _opt_obj(rec.get("trust"), "trust"),
        "exit_status": exit_status,
    }
    details = _opt_obj(rec.get("details"), "details")
    if details:
        body["details"] = details
    body["source"] = {
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "time": _opt_str(rec.get("time"), "time", 64),
        "host": _opt_str(rec.get("host"), "host", 256),
    }
    return body


def _host_body(peer_uid: int, peer_pid: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "time": _canon.now(), "host": socket.gethostname(), "uid": peer_uid,
        "user": _user_name(peer_uid), "action": "", "outcome": "ok", "reason": None,
        "container": {"id": None, "name": None}, "image": {"ref": None, "digest": None},
        "profile": None, "profile_hash": None, "confinement": None, "trust": None,
        "exit_status": None,
    }
    body.update(fields)
    src = dict(body.get("source") or {})
    src["pid"] = peer_pid
    body["source"] = src
    return body


class Collector:
    """Receives records on ``socket_path`` and appends them to the host log in ``log_dir``."""

    def __init__(self, socket_path: Path, log_dir: Path, *,
                 checkpoint_every: int = _store.DEFAULT_CHECKPOINT_EVERY) -> None:
        self.socket_path = socket_path
        self.log = _store.LogDir(log_dir, name=_store.key_name(socket.gethostname(), "host"),
                                 shared=True, checkpoint_every=checkpoint_every)
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: dict[int, int] = {}
        self._conns_lock = threading.Lock()
        self.quotas = _quota.Quotas()
        # (uid, image digest) -> the content digest its last import/pull/verify recorded:
        # read from the host log once, here, then kept up to date by each append.
        self._contents = self._read_contents()
        self._contents_lock = threading.Lock()

    def _admit(self, conn: socket.socket) -> bool:
        """Start serving ``conn`` unless its uid already holds its share of connections
        (or the process nears its descriptor limit); close it then."""
        try:
            pid, uid, _gid = peer_credentials(conn)
        except OSError:
            conn.close()
            return False
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        with self._conns_lock:
            total = sum(self._conns.values())
            mine = self._conns.get(uid, 0)
            if mine >= MAX_CONNECTIONS_PER_UID or (soft > 0 and total >= soft - 32):
                full = True
            else:
                full = False
                self._conns[uid] = mine + 1
        if full:
            try:
                conn.send(b'{"ok":false,"error":"too many connections from your uid"}\n',
                          socket.MSG_DONTWAIT)
            except OSError:
                pass
            conn.close()
            return False
        threading.Thread(target=self._serve_connection, args=(conn, pid, uid),
                         daemon=True).start()
        return True

    def handle(self, payload: bytes, pid: int, uid: int) -> dict[str, Any]:
        """Turn one submitted line from peer (pid, uid) into a host record; return the answer."""
        refusal = self.quotas.charge(uid, len(payload), time.monotonic())
        if refusal is not None:
            return self._over_quota(refusal, pid, uid)
        try:
            msg = json.loads(payload)
            if not isinstance(msg, dict) or msg.get("v") != 1:
                raise ValueError("not a version 1 submission")
            if "cosign" in msg or "cosigned" in msg:
                return self._witness_request(msg, pid, uid)
            if "content" in msg:
                image = msg["content"].get("image") if isinstance(msg["content"], dict) else None
                if not isinstance(image, str):
                    raise ValueError("a content question needs an image digest")
                return {"ok": True, "content": self._content_of(uid, image)}
            submitted = msg.get("record")
            body = validate_submission(submitted)
            checkpoint = msg.get("checkpoint") is True
        except (ValueError, RecursionError) as e:
            self.log.append(_host_body(uid, pid, action="audit.malformed", outcome="refused",
                                       reason=f"a malformed record was submitted: {e}",
                                       details={"bytes": len(payload)}))
            return {"ok": False, "error": f"malformed record: {e}"}
        true_user = _user_name(uid)
        assert isinstance(submitted, dict)
        if submitted["uid"] != uid or submitted["user"] != true_user:
            rec = self.log.append(_host_body(
                uid, pid, action="audit.forgery", outcome="refused",
                reason=(f"a record claimed uid {submitted['uid']} ({submitted['user']}) but "
                        f"was sent by uid {uid} ({true_user})"),
                details={"claimed_uid": submitted["uid"], "claimed_user": submitted["user"],
                         "claimed_action": body["action"],
                         "claimed_outcome": body["outcome"]}), checkpoint=True)
            return {"ok": False, "seq": rec["seq"],
                    "error": f"the record's uid is not the sender's (uid {uid}); "
                             "recorded as a forgery attempt"}
        if checkpoint:
            checkpoint = self.quotas.checkpoint_due(uid, time.monotonic())
        rec = self.log.append(_host_body(uid, pid, **body), checkpoint=checkpoint)
        self._note_content(rec)
        return {"ok": True, "seq": rec["seq"]}

    def _content_of(self, uid: int, image: str) -> str | None:
        """The content digest the host log last recorded for ``uid``'s image ``image``."""
        with self._contents_lock:
            return self._contents.get((uid, image))

    def _read_contents(self) -> dict[tuple[int, str], str]:
        """One pass over the host log: only lines that can be image records with a
        content digest are parsed (records are canonical JSON, so the byte test holds)."""
        from secpod.audit._verify import read_chunks

        found: dict[tuple[int, str], str] = {}
        if not self.log.log_file.exists():
            return found
        pending = b""
        for chunk in read_chunks(self.log.log_file):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if b'"action":"image.' not in line or b'"content":"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    self._index_into(found, rec)
        return found

    def _note_content(self, rec: dict[str, Any]) -> None:
        with self._contents_lock:
            self._index_into(self._contents, rec)

    @staticmethod
    def _index_into(index: dict[tuple[int, str], str], rec: dict[str, Any]) -> None:
        if rec.get("action") not in _CONTENT_ACTIONS or rec.get("outcome") != "ok":
            return
        details, image = rec.get("details") or {}, rec.get("image") or {}
        content = details.get("content") if isinstance(details, dict) else None
        digest = image.get("digest") if isinstance(image, dict) else None
        if isinstance(content, str) and isinstance(digest, str) and isinstance(rec.get("uid"), int):
            index[(rec["uid"], digest)] = content

    def _witness_request(self, msg: dict[str, Any], pid: int, uid: int) -> dict[str, Any]:
        """``{"cosigned": "last"}``: the last note cosigned for the sender;
        ``{"cosign": {"checkpoint", "vkey", "proof"}}``: cosign it (secpod/audit/_cosign.py)."""
        from secpod.audit import _cosign, _note
        from secpod.errors import CheckpointError, MalformedInput

        witness = _cosign.Witness(self.log.path, self.log.signer())
        if "cosigned" in msg:
            last = witness.last(uid)
            return {"ok": True, "note": last[0] if last else None}
        req = msg.get("cosign")
        if not isinstance(req, dict) or not isinstance(req.get("checkpoint"), str) \
                or not isinstance(req.get("vkey"), str):
            return {"ok": False, "error": "a cosign request needs checkpoint and vkey"}
        try:
            note = witness.cosign(uid, req["checkpoint"], req["vkey"], req.get("proof"))
        except _cosign.Refusal as e:
            action = "audit.rewrite" if e.rewrite else "audit.cosign"
            self.log.append(_host_body(uid, pid, action=action, outcome="refused",
                                       reason=e.message), checkpoint=True)
            return {"ok": False, "error": e.message}
        except (CheckpointError, MalformedInput) as e:
            self.log.append(_host_body(uid, pid, action="audit.cosign", outcome="refused",
                                       reason=e.message))
            return {"ok": False, "error": e.message}
        cp = _note.parse_checkpoint(note)
        self.log.append(_host_body(uid, pid, action="audit.cosign", outcome="ok",
                                   details={"origin": cp.origin, "size": cp.size,
                                            "root": cp.root.hex()}))
        return {"ok": True, "note": note}

    def _over_quota(self, refusal: _quota.Refusal, pid: int, uid: int) -> dict[str, Any]:
        """Refuse; record the refusals as one audit.quota event now and then."""
        if refusal.report is not None:
            self.log.append(_host_body(
                uid, pid, action="audit.quota", outcome="refused",
                reason=f"quota exceeded: {refusal.report['refused']} submission(s) refused",
                details=refusal.report), checkpoint=True)
        return {"ok": False, "error": refusal.answer}

    def _serve_connection(self, conn: socket.socket, pid: int | None = None,
                          uid: int | None = None) -> None:
        if pid is None or uid is None:
            pid, uid, _gid = peer_credentials(conn)
        try:
            buf = b""
            while not self._stop.is_set():
                # The whole line within READ_TIMEOUT: a client that sends nothing, or a
                # byte at a time, cannot hold a connection for long.
                deadline = time.monotonic() + READ_TIMEOUT
                while b"\n" not in buf:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    conn.settimeout(left)
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    if len(buf) > MAX_LINE:
                        refusal = self.quotas.charge(uid, len(buf), time.monotonic())
                        if refusal is not None:
                            self._over_quota(refusal, pid, uid)
                            conn.sendall(json.dumps({"ok": False, "error": refusal.answer})
                                         .encode() + b"\n")
                            return
                        self.log.append(_host_body(
                            uid, pid, action="audit.malformed", outcome="refused",
                            reason=f"a submission longer than {MAX_LINE} bytes was refused",
                            details={"bytes": len(buf)}))
                        conn.sendall(b'{"ok":false,"error":"record too long"}\n')
                        return
                line, _, buf = buf.partition(b"\n")
                try:
                    answer = self.handle(line, pid, uid)
                except AuditError as e:  # tell the sender why, not just hang up
                    conn.sendall(json.dumps({"ok": False, "error": f"the host log cannot be "
                                             f"written: {e.message}"}).encode() + b"\n")
                    raise
                conn.sendall(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        except TimeoutError:
            pass  # an idle or slow client: hang up
        except (OSError, AuditError) as e:
            print(f"secpod-audit-collector: connection: {e}", file=sys.stderr, flush=True)
        finally:
            conn.close()
            with self._conns_lock:
                n = self._conns.get(uid, 1) - 1
                if n:
                    self._conns[uid] = n
                else:
                    self._conns.pop(uid, None)

    def _bind(self) -> socket.socket:
        parent = self.socket_path.parent
        parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = os.lstat(parent)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise AuditError(f"{parent} must be owned by root and not writable by others")
        try:
            old = os.lstat(self.socket_path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(old.st_mode):
                raise AuditError(f"{self.socket_path} exists and is not a socket")
            os.unlink(self.socket_path)  # a stale socket of a collector that is gone
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(str(self.socket_path))
        # Every user may submit; who they are comes from the kernel (SO_PEERCRED).
        os.chmod(self.socket_path, 0o666)  # noqa: S103
        sock.listen(64)
        return sock

    def serve(self, *, ready: Callable[[], None] | None = None) -> None:
        """Run until SIGTERM or SIGINT. Raises AuditError if the socket or log cannot be set up."""
        self.log.ensure_key()
        self._listener = self._bind()
        me = os.getpid()
        self.log.append(_host_body(os.getuid(), me, action="audit.collect.start",
                                   reason=f"listening on {self.socket_path}"))

        def stop(_sig: int, _frame: object) -> None:
            self._stop.set()
            if self._listener is not None:
                self._listener.close()

        old_term = signal.signal(signal.SIGTERM, stop)
        old_int = signal.signal(signal.SIGINT, stop)
        if ready:
            ready()
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except OSError as e:
                    if self._stop.is_set():
                        break
                    # Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): what
                    # clients do must never take the collector down. Wait, then go on.
                    print(f"secpod-audit-collector: accept: {e}", file=sys.stderr, flush=True)
                    time.sleep(0.1)
                    continue
                if not self._admit(conn):
                    continue
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            self.log.append(_host_body(os.getuid(), me, action="audit.collect.stop",
                                       reason="stopped by signal"), checkpoint=True)
