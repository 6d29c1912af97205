"""Is an audit log intact? A pure check over its bytes, its checkpoints and a key.

Checks, in order; each failure is a :class:`Problem` naming the record or
checkpoint at fault:

 1. There is a verifier key (given, or the log's ``key.vkey``).
 2. Every checkpoint parses, is signed by that key, and names it as origin.
 3. Every line starts with ``{"seq":i,"prev":"<leaf hash of line i-1>",``:
    a wrong seq means records were deleted, inserted or reordered; a wrong
    prev means the previous record was modified.
 4. The log ends with a newline (a torn final line is reported, never
    accepted).
 5. Each checkpoint's root equals the RFC 6962 root of the first
    ``size`` records, and no checkpoint covers more records than the log
    holds (truncation back past a checkpoint).
 6. The log still holds the last record the writer wrote (from its state
    file): catches changes after the last checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from secpod import _files
from secpod._record import field, record
from secpod.audit import _canon, _merkle, _note
from secpod.errors import AuditError, CheckpointError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

_MAX_PROBLEMS = 50


@record(frozen=True)
class Problem:
    """One way the log is not intact."""

    kind: str
    message: str
    seq: int | None = None
    checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "seq": self.seq,
                "checkpoint": self.checkpoint}


@record(frozen=True)
class CheckpointInput:
    """A checkpoint to check, with a label that says where it came from."""

    label: str
    note: str


@record(frozen=True)
class Written:
    """What the writer last wrote (from its state file): records and the last leaf hash."""

    records: int
    last_hash: str


@record(frozen=True)
class Verification:
    """The verdict on a log."""

    records: int
    size: int
    root: bytes
    key: str | None
    checkpoints: int
    covered: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    more_problems: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "intact": self.intact, "records": self.records, "bytes": self.size,
            "root": base64.b64encode(self.root).decode(), "key": self.key,
            "checkpoints": self.checkpoints, "covered": self.covered,
            "problems": [p.to_json() for p in self.problems],
            "more_problems": self.more_problems,
        }


def _walk_batch(buf: bytes, start: int, end: int, hashes: list[bytes], n: int, offset: int,
                seq: int, prev: bytes, resume: bytes | None,
                add: Callable[[Problem], None]) -> tuple[int, bytes, bytes | None]:
    """Check a batch line by line, reporting each break in the chain; return the state after."""
    pos = start
    for i, d in enumerate(hashes):
        e = buf.find(b"\n", pos)
        line = buf[pos:e]
        want_prefix = _canon.chain_prefix(seq, prev)
        if not line.startswith(want_prefix):
            if resume is not None and line.startswith(resume):
                m = _canon.PREFIX_RE.match(line)
                assert m is not None
                seq = int(m.group(1))
                resume = None
            else:
                p, found = _diagnose(line, n + i + 1, offset + pos - start, seq, prev)
                add(p)
                if p.kind == "inserted":
                    resume = want_prefix
                seq = found
        seq += 1
        prev = d.hex().encode()
        pos = e + 1
    return seq, prev, resume


_NODE0 = hashlib.sha256(b"\x01")


class _BatchTree:
    """An RFC 6962 compact range grown a batch of leaves at a time.

    ``levels[k]`` holds the one node of height k still waiting for its right
    sibling (bit k of the leaf count), or nothing; a batch is paired level by
    level in list comprehensions, which is several times faster than one
    leaf at a time.
    """

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = []

    def extend(self, hashes: list[bytes]) -> None:
        node0 = _NODE0
        cur = hashes
        k = 0
        while cur:
            if k == len(self.levels):
                self.levels.append([])
            buf = self.levels[k] + cur if self.levels[k] else cur
            if len(buf) & 1:
                self.levels[k] = [buf[-1]]
                buf = buf[:-1]
            else:
                self.levels[k] = []
            it = iter(buf)  # even length: pairs (0,1), (2,3), ...
            out: list[bytes] = []
            keep = out.append
            for left, right in zip(it, it, strict=True):
                h = node0.copy()  # cheaper than a new hash object per node
                h.update(left + right)
                keep(h.digest())
            cur = out
            k += 1

    def root(self) -> bytes:
        frontier = [lv[0] for lv in reversed(self.levels) if lv]
        return _merkle.frontier_root(frontier)


def _records(start: int, end: int) -> str:
    return f"record {start}" if end - start == 1 else f"records {start}-{end - 1}"


def _diagnose(line: bytes, lineno: int, offset: int, want_seq: int, want_prev: bytes
              ) -> tuple[Problem, int]:
    """Name what is wrong with a line whose prefix is not the expected one; return the seq
    to continue from."""
    m = _canon.PREFIX_RE.match(line)
    where = f"line {lineno}, byte {offset}"
    if m is None:
        return Problem("malformed", f"record {want_seq} ({where}) is not a record line: "
                       "it was edited by hand or damaged", seq=want_seq), want_seq
    seq = int(m.group(1))
    if seq > want_seq:
        gone = f"record {want_seq}" if seq == want_seq + 1 else f"records {want_seq}-{seq - 1}"
        return Problem("deleted", f"{gone} missing: {where} holds record {seq} (deleted, "
                       "or moved later)", seq=want_seq), seq
    if seq < want_seq:
        return Problem("inserted", f"{where} holds record {seq} where record {want_seq} belongs "
                       "(a record was inserted, duplicated or moved)", seq=want_seq), seq
    if seq == 0:
        return Problem("modified", f"record 0 ({where}) has a changed link to before the log",
                       seq=0), seq
    return Problem("modified", f"record {seq - 1} was modified: its hash no longer matches the "
                   f"link in record {seq} ({where})", seq=seq - 1), seq


SignatureCheck = Callable[[list[tuple[bytes, bytes]]], Callable[[], list[bool]]]


def inline_signatures(key: _note.VerifierKey) -> SignatureCheck:
    """Check (message, signature) pairs with ``key``, here and now."""
    def start(items: list[tuple[bytes, bytes]]) -> Callable[[], list[bool]]:
        results = [key.verify_signature(m, s) for m, s in items]
        return lambda: results
    return start


class Prehashed:
    """Leaf hashes of a log whose chain is walked elsewhere (see :func:`verify_dir`):
    batches of (leaf hashes, bytes they span), and the bytes after the last newline
    (known once the batches are consumed)."""

    def __init__(self, batches: Iterable[tuple[list[bytes], int]], pending: bytes = b"") -> None:
        self.batches = batches
        self.pending = pending


class _Chain:
    """Walks a log's lines: leaf hashes, and every break in the seq/prev chain."""

    def __init__(self, add: Callable[[Problem], None]) -> None:
        self.add = add
        self.seq = 0
        self.prev = _canon.ZERO_HASH.encode()
        self.resume: bytes | None = None  # where the chain goes on after a record out of place
        self.pending = b""
        self.n = 0
        self.offset = 0

    def walk(self, chunks: Iterable[bytes]) -> Iterator[tuple[list[bytes], int]]:
        leaf0 = hashlib.sha256(b"\x00")
        hexlify = binascii.b2a_hex
        seq, prev = self.seq, self.prev
        for chunk in chunks:
            buf = self.pending + chunk if self.pending else chunk
            mv = memoryview(buf)
            find = buf.find
            at = buf.startswith
            pos = 0
            last = buf.rfind(b"\n")
            hashes: list[bytes] = []
            keep = hashes.append
            batch_seq, batch_prev = seq, prev
            clean = self.resume is None
            while pos <= last:
                eol = find(b"\n", pos)
                h = leaf0.copy()
                h.update(mv[pos:eol])
                d = h.digest()
                if clean and not at(b'{"seq":%d,"prev":"%s",' % (seq, prev), pos):
                    clean = False
                keep(d)
                prev = hexlify(d)
                seq += 1
                pos = eol + 1
            if not clean:
                # Something is wrong in this chunk: walk it again to name it.
                seq, prev, self.resume = _walk_batch(buf, 0, pos, hashes, self.n, self.offset,
                                                     batch_seq, batch_prev, self.resume,
                                                     self.add)
            self.seq, self.prev = seq, prev
            self.n += len(hashes)
            self.offset += pos
            self.pending = bytes(mv[pos:])
            mv.release()
            yield hashes, pos


def verify_stream(chunks: Iterable[bytes], *, key: _note.VerifierKey | None,
                  checkpoints: Sequence[CheckpointInput] = (),
                  written: Written | None = None,
                  signatures: SignatureCheck | None = None,
                  prehashed: Prehashed | None = None) -> Verification:
    """Verify a log given as consecutive byte chunks. Pure: no I/O of its own.

    ``signatures`` checks the checkpoints' Ed25519 signatures (default: in
    line); it is started before the chain and waited for after it, so a caller
    may run it beside the chain (:func:`verify_dir` does, for many checkpoints).
    ``prehashed`` stands in for ``chunks`` when the chain was walked elsewhere.
    """
    problems: list[Problem] = []
    extra = 0

    def add(p: Problem) -> None:
        nonlocal extra
        if len(problems) < _MAX_PROBLEMS:
            problems.append(p)
        else:
            extra += 1

    # 1. key
    if key is None:
        add(Problem("missing-key", "the log's verifier key is missing: no checkpoint can be "
                    "checked"))

    # 2. checkpoints: names and key ids now, signatures beside the chain
    entries: list[tuple[str, _note.Checkpoint]] = []
    signed: list[tuple[bytes, bytes]] = []
    for cp_in in checkpoints:
        try:
            cp = _note.parse_checkpoint(cp_in.note)
        except CheckpointError as e:
            add(Problem("checkpoint-malformed", f"{cp_in.label} is malformed: {e.message}",
                        checkpoint=cp_in.label))
            continue
        label = f"{cp_in.label} (size {cp.size}, {cp.time or 'no time'})"
        if key is not None:
            try:
                part = cp.signed_part(key)
            except CheckpointError as e:
                add(Problem("checkpoint-signature", f"{label}: {e.message}", checkpoint=label))
                continue
            signed.append((cp.text.encode(), part.signature))
        entries.append((label, cp))
    parsed = len(entries) + sum(p.kind == "checkpoint-signature" for p in problems)
    waiter = (signatures or inline_signatures(key))(signed) if key is not None else None
    want = {cp.size for _label, cp in entries}
    roots: dict[int, bytes] = {}

    # 3. the chain, 5. roots on the way
    tree = _BatchTree()
    n = 0
    offset = 0
    written_leaf: bytes | None = None
    wn = written.records if written else -1
    # Sizes at which the tree's root is wanted; batches are cut there.
    stops = sorted(want)
    stop_i = 0
    if 0 in want:
        roots[0] = tree.root()
    chain = _Chain(add)
    batches = chain.walk(chunks) if prehashed is None else prehashed.batches
    for hashes, nbytes in batches:
        # Grow the tree, stopping where a checkpoint wants the root.
        done = 0
        end_n = n + len(hashes)
        while stop_i < len(stops) and stops[stop_i] <= end_n:
            cut = stops[stop_i] - n
            stop_i += 1
            if cut < done:
                continue
            tree.extend(hashes[done:cut])
            done = cut
            roots[n + cut] = tree.root()
        tree.extend(hashes[done:])
        if n < wn <= end_n:
            written_leaf = hashes[wn - n - 1]
        n = end_n
        offset += nbytes
    pending = chain.pending if prehashed is None else prehashed.pending
    seq = chain.seq if prehashed is None else n

    # 4. torn end
    if pending:
        add(Problem("torn", f"the final line (record {seq}, line {n + 1}, byte {offset}) is "
                    f"torn: {len(pending)} bytes without a newline, a write that never "
                    "completed; the next record appended moves it aside and says so",
                    seq=seq))

    # 2 (cont.) signatures, 5. roots and checkpoints beyond the end
    good = waiter() if waiter is not None else [True] * len(entries)
    covered = 0
    mismatched: list[int] = []
    beyond: list[tuple[str, int]] = []
    for (label, cp), ok in zip(entries, good, strict=True):
        if not ok:
            add(Problem("checkpoint-signature", f"{label}: the signature by "
                        f"{key.name if key else '?'} does not verify", checkpoint=label))
        elif cp.size > n:
            beyond.append((label, cp.size))
        elif roots.get(cp.size) != cp.root:
            if not mismatched:
                add(Problem("checkpoint-mismatch", f"{label} does not match the log: a "
                            f"record before {cp.size} was modified, inserted, deleted or "
                            "reordered", checkpoint=label))
            mismatched.append(cp.size)
        else:
            covered = max(covered, cp.size)
    if len(mismatched) > 1:
        later = sorted(mismatched[1:])
        add(Problem("checkpoint-mismatch", f"{len(later)} later checkpoint(s) "
                    f"(sizes {later[0]}-{later[-1]}) do not match either"))
    if beyond:
        label, size = max(beyond, key=lambda b: b[1])
        also = f" (and {len(beyond) - 1} other checkpoint(s) beyond the end)" \
            if len(beyond) > 1 else ""
        add(Problem("truncated", f"the log holds {n} records but {label} covers "
                    f"{size}: {_records(n, size)} were removed (truncated back past a "
                    f"checkpoint){also}", seq=n, checkpoint=label))

    # 6. what the writer last wrote
    if written is not None and written.records > 0:
        if written.records > n:
            add(Problem("truncated", f"the log holds {n} records but {written.records} were "
                        f"written: {_records(n, written.records)} were removed", seq=n))
        elif written_leaf is not None and written_leaf.hex() != written.last_hash:
            add(Problem("modified", f"record {written.records - 1} is not the record that was "
                        "written there (it was modified or replaced)",
                        seq=written.records - 1))

    return Verification(records=n, size=offset, root=tree.root(),
                        key=str(key) if key else None, checkpoints=parsed, covered=covered,
                        problems=tuple(problems), more_problems=extra)


# --- files -----------------------------------------------------------------------


def _signature_worker(key: _note.VerifierKey, items: list[tuple[bytes, bytes]],
                      out: Any) -> None:
    out.send([key.verify_signature(m, s) for m, s in items])
    out.close()


def _beside(key: _note.VerifierKey, threshold: int = 64) -> SignatureCheck:
    """Check many checkpoint signatures in a child process while the chain is walked.

    Ed25519 verification is ~0.1 ms each; a big log has thousands of
    checkpoints, and a host has a second core. Few signatures are checked here.
    """
    def start(items: list[tuple[bytes, bytes]]) -> Callable[[], list[bool]]:
        if len(items) < threshold:
            return inline_signatures(key)(items)
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_signature_worker, args=(key, items, send), daemon=True)
        proc.start()
        send.close()

        def wait() -> list[bool]:
            try:
                results: list[bool] = recv.recv()
            except EOFError:
                results = inline_signatures(key)(items)()  # the child died: do it here
            finally:
                recv.close()
                proc.join()
            if len(results) != len(items):
                results = inline_signatures(key)(items)()
            return results
        return wait
    return start


# --- two cores for a big log ---------------------------------------------------------

PARALLEL_MIN = 32 << 20     # below this, a second process costs more than it saves
PARALLEL_MAX = 2 << 30      # above this, the second half's hashes would take too much memory


class _Broken(Exception):
    """The fast two-process walk found a break in the chain: walk again, in order."""


def _split_point(log: Path) -> int | None:
    """Where to cut the log in two (just after a newline near the middle), or None."""
    if (os.cpu_count() or 1) < 2:
        return None
    with _open_log(log) as f:
        size = os.fstat(f.fileno()).st_size
        if not PARALLEL_MIN <= size <= PARALLEL_MAX:
            return None
        f.seek(size // 2)
        window = f.read(1 << 20)
    nl = window.find(b"\n")
    if nl < 0 or size // 2 + nl + 1 >= size:
        return None
    return size // 2 + nl + 1


def _open_log(path: Path) -> io.FileIO:
    """``path`` opened for reading, only if it is a regular file (docs/audit.md: an
    administrator reads users' folders, where a FIFO or a link to a device may wait)."""
    return io.FileIO(_files.open_regular(path), "rb", closefd=True)


def _range_chunks(path: Path, start: int, end: int) -> Iterator[bytes]:
    with _open_log(path) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            b = f.read(min(1 << 20, left))
            if not b:
                return
            left -= len(b)
            yield b


def _raise(_p: Problem) -> None:
    raise _Broken


def _hash_second_half(path: Path, start: int, end: int, out: Any) -> None:
    """Child: walk [start, end) from what its first line claims; send its leaf hashes."""
    try:
        with _open_log(path) as f:
            f.seek(start)
            m = _canon.PREFIX_RE.match(f.read(200))
        if m is None:
            raise _Broken
        chain = _Chain(_raise)
        chain.seq, chain.prev = int(m.group(1)), m.group(2)
        hashes: list[bytes] = []
        nbytes = 0
        for batch, n in chain.walk(_range_chunks(path, start, end)):
            hashes += batch
            nbytes += n
        out.send((True, int(m.group(1)), m.group(2), b"".join(hashes), nbytes, chain.pending))
    except (_Broken, OSError):
        out.send((False, 0, b"", b"", 0, b""))
    out.close()


def _two_halves(log: Path, split: int) -> Prehashed:
    """Walk the first half here while a child walks the second; raises _Broken (from the
    batches, as they are consumed) if either half, or the seam, breaks the chain."""
    size = log.stat().st_size
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_hash_second_half, args=(log, split, size, send), daemon=True)
    child.start()
    send.close()

    def batches() -> Iterator[tuple[list[bytes], int]]:
        try:
            chain = _Chain(_raise)
            yield from chain.walk(_range_chunks(log, 0, split))
            if chain.pending:
                raise _Broken
            try:
                ok, seq, prev, blob, nbytes, pending = recv.recv()
            except EOFError:
                raise _Broken from None
            if not ok or seq != chain.n or prev != chain.prev:
                raise _Broken
            result.pending = pending
            yield [blob[i:i + 32] for i in range(0, len(blob), 32)], nbytes
        finally:
            recv.close()
            child.join()

    result = Prehashed(batches())
    return result


def read_chunks(path: Path, size: int = 1 << 24) -> Iterator[bytes]:
    """The bytes of the log file ``path`` in chunks. Raises OSError (NotRegularFile for
    anything but a regular file)."""
    with _open_log(path) as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b


SMALL_MAX = 1 << 16  # a key, a checkpoint note, state.json
CHECKPOINTS_MAX = 1 << 28  # checkpoints.jsonl: one ~300-byte line per checkpoint


def _small_text(path: Path) -> str:
    """A key or checkpoint file's text (not UTF-8: malformed, as the parser says).
    Raises OSError: NotRegularFile, TooLarge, or as ``open`` does."""
    return _files.read_limited(path, SMALL_MAX).decode(errors="replace")


def load_key(spec: str | None, log_dir: Path) -> _note.VerifierKey | None:
    """The verifier key: ``spec`` (a vkey or a file holding one), else the log's own.

    Raises CheckpointError if the key given is malformed, AuditError if a file
    named cannot be read.
    """
    from secpod.audit._store import LogDir

    if spec:
        if "+" in spec and not os.path.exists(spec):
            return _note.VerifierKey.parse(spec)
        try:
            return _note.VerifierKey.parse(_small_text(Path(spec)))
        except OSError as e:
            raise AuditError(f"cannot read the key {spec}: {e.strerror}") from e
    return LogDir(log_dir, name="-").verifier()


def load_checkpoints(log_dir: Path, extra: Path | None = None
                     ) -> tuple[list[CheckpointInput], list[Problem]]:
    """The checkpoints kept beside a log (and ``extra``), and problems reading them."""
    out: list[CheckpointInput] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    path = log_dir / "checkpoints.jsonl"
    try:
        data = _files.read_limited(path, CHECKPOINTS_MAX)
    except FileNotFoundError:
        data = b""
    except OSError as e:
        raise AuditError(f"cannot read {path}: {e.strerror}") from e
    lines = data.split(b"\n")
    if lines and lines[-1]:
        problems.append(Problem("torn", f"{path}: the final line is torn (a checkpoint "
                                "write that never completed)", checkpoint=f"{path.name} last"))
    for i, raw in enumerate(lines[:-1], 1):
        label = f"checkpoint {path.name}:{i}"
        try:
            note = json.loads(raw)["note"]
            if not isinstance(note, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            problems.append(Problem("checkpoint-malformed", f"{label} is not a checkpoint "
                                    "entry", checkpoint=label))
            continue
        if note not in seen:
            seen.add(note)
            out.append(CheckpointInput(label, note))
    latest = log_dir / "checkpoint"
    try:
        note = _small_text(latest)
    except FileNotFoundError:
        note = None
    except OSError as e:
        raise AuditError(f"cannot read {latest}: {e.strerror}") from e
    if note is not None and note not in seen:
        seen.add(note)
        out.append(CheckpointInput(f"checkpoint file {latest}", note))
    if extra is not None:
        try:
            note = _small_text(extra)
        except OSError as e:
            raise AuditError(f"cannot read the checkpoint {extra}: {e.strerror}") from e
        out.append(CheckpointInput(f"checkpoint {extra}", note))
    return out, problems


def read_written(log_dir: Path) -> Written | None:
    from secpod.audit._store import _State

    try:
        st = _State.load(_files.read_limited(log_dir / "state.json", SMALL_MAX))
    except OSError:
        return None
    return Written(st.records, st.last_hash) if st else None


def verify_dir(log_dir: Path, *, key: str | None = None,
               checkpoint: Path | None = None) -> Verification:
    """Verify the log in ``log_dir`` against its checkpoints (and ``checkpoint``).

    Raises AuditError if the log cannot be read at all, CheckpointError if
    ``key`` is malformed.
    """
    log = log_dir / "log.jsonl"
    if not log.exists():
        raise AuditError(f"there is no audit log at {log}",
                         hint="a log starts with the first action secpod records")
    vkey = load_key(key, log_dir)
    cps, cp_problems = load_checkpoints(log_dir, checkpoint)
    written = read_written(log_dir)
    try:
        result = None
        split = _split_point(log)
        if split is not None:
            try:
                result = verify_stream((), key=vkey, checkpoints=cps, written=written,
                                       signatures=_beside(vkey) if vkey is not None else None,
                                       prehashed=_two_halves(log, split))
            except _Broken:
                result = None  # walk it again in order, to name what is wrong
        if result is None:
            result = verify_stream(read_chunks(log, 1 << 20), key=vkey, checkpoints=cps,
                                   written=written,
                                   signatures=_beside(vkey) if vkey is not None else None)
    except OSError as e:
        raise AuditError(f"cannot read {log}: {e.strerror}") from e
    if cp_problems:
        probs = tuple(cp_problems) + result.problems
        result = Verification(records=result.records, size=result.size, root=result.root,
                              key=result.key, checkpoints=result.checkpoints,
                              covered=result.covered, problems=probs,
                              more_problems=result.more_problems)
    return result
