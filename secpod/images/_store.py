"""The per-user, content-addressed image store.

Layout under ``$XDG_DATA_HOME/secpod/images`` (docs/images.md):

    blobs/<alg>/<hex>        manifests, configs, layers, by digest
    layers/<diff_id hex>/tree    one layer's files, unpacked once (secpod.images._farm)
    layers/<diff_id hex>/layer.json  what the farm needs of it, and its unpack report
    unpacked/<hex>/rootfs    the root filesystem of manifest <hex>, shared read-only: a
                             hard-link farm of its layers' trees
    unpacked/<hex>/layers.json   its layers, bottom first (absent in older stores,
                             whose rootfs is a tree of its own)
    unpacked/<hex>/report.json   what the unpack neutralised
    unpacked/<hex>/content.json, tree   what was verified (secpod.images._content)
    index.json               {"names": {name: digest}, "images": {digest: {...}}}
    lock                     flock(2): writers exclusive, readers shared
    tmp/                     staging of imports in progress, trash of removals

An import stages everything under tmp/ and moves it in under the lock at the
end, so a failure or an interrupt leaves nothing behind, and concurrent
secpod processes never lose each other's index updates.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from secpod import paths
from secpod._record import record
from secpod.errors import (
    Conflict,
    ContentChanged,
    DigestMismatch,
    Error,
    MalformedInput,
    NotFound,
    UsageError,
)
from secpod.images import reference
from secpod.images._manifest import Descriptor, parse_config, parse_manifest

# The unpack and archive machinery (tarfile, gzip, zstandard) is imported where an image
# comes in or goes out: `secpod run` only resolves images and never needs it.
TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from secpod.images._sources import BlobSource

Progress = Callable[[str], None]
BeforeCommit = Callable[["ImageRecord", list[str]], None]
_NOT_FOUND_HINT = "`secpod image ls` lists your images; `secpod image import PATH` adds one"
_TAMPERED = "the image is corrupt or was tampered with; nothing was imported"
_HEX_REF = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")


def human_size(n: int) -> str:
    """Decimal units, as ``docker images`` shows them."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1000
    raise AssertionError  # pragma: no cover


def failure_reason(e: BaseException) -> str:
    """What an ``error`` audit record says stopped an action: the error, or ^C."""
    return e.message if isinstance(e, Error) else "interrupted"


def _familiar(name: str) -> str:
    try:
        return reference.parse(name).familiar()
    except Error:
        return name


@record(frozen=True)
class ImageRecord:
    """One image in the store.

    ``digest`` is the manifest digest; ``names`` are normalised references
    (``docker.io/library/busybox:latest``); ``rootfs`` is the unpacked root
    filesystem, shared by every container of the image and never to be written;
    ``content`` is the digest of the record of what was verified when the image
    entered the store (None for an image stored before secpod recorded it);
    ``unpacked_layers`` are (diff_id, bytes of its files) of the layer trees its rootfs
    links, bottom first (empty for an image stored before layers were shared).
    """

    digest: str
    names: tuple[str, ...]
    config_digest: str
    config: dict[str, Any]
    layers: tuple[dict[str, Any], ...]
    size: int
    created: str
    rootfs: Path
    unpack_report: dict[str, Any]
    content: str | None = None
    unpacked_layers: tuple[tuple[str, int], ...] = ()

    def familiar_names(self) -> tuple[str, ...]:
        """Names as people type them: ``busybox:latest``."""
        return tuple(_familiar(n) for n in self.names)

    def short_id(self) -> str:
        """The first 12 hex digits of the manifest digest."""
        return self.digest.partition(":")[2][:12]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, as ``secpod image inspect`` prints it."""
        return {
            "digest": self.digest, "id": self.short_id(), "names": list(self.names),
            "familiar_names": list(self.familiar_names()), "config_digest": self.config_digest,
            "config": self.config, "layers": list(self.layers), "size": self.size,
            "created": self.created, "rootfs": str(self.rootfs),
            "unpack_report": self.unpack_report, "content": self.content,
            "unpacked_layers": [list(x) for x in self.unpacked_layers],
        }


@record
class _Index:
    """index.json: names to manifest digests, and what is known of each image."""

    names: dict[str, str]
    images: dict[str, dict[str, Any]]

    def names_of(self, digest: str) -> tuple[str, ...]:
        return tuple(sorted(n for n, d in self.names.items() if d == digest))


def _normalise_name(name: str) -> str:
    ref = reference.parse(name)
    if ref.digest:
        raise UsageError(f"an image name cannot pin a digest: {name!r}",
                         hint="give NAME[:TAG]")
    return str(ref)


_PROGRESS_EVERY = 128 << 20


def _copy_verified(src: BinaryIO, dest: Path, d: Descriptor, what: str,
                   say: Progress | None = None, wrote: Callable[[int], None] | None = None,
                   ) -> None:
    """Copy ``src`` to ``dest`` while hashing; raise DigestMismatch unless it matches ``d``.

    ``wrote(n)`` is told of every ``n`` bytes once they are in the file (the
    unpacking thread reads behind it). The caller syncs the file.
    """
    alg, _, want = d.digest.partition(":")
    h = hashlib.new(alg)
    n = 0
    next_report = _PROGRESS_EVERY
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb", buffering=0) as out:
        while chunk := src.read(1 << 20):
            n += len(chunk)
            if n > d.size:
                raise DigestMismatch(f"{what} {d.digest}: longer than the {d.size} bytes its "
                                     "descriptor says", hint=_TAMPERED)
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[out.write(view) or 0:]
            if wrote is not None:
                wrote(len(chunk))
            if say is not None and n >= next_report:
                say(f"{what} {d.digest[7:19]}: {human_size(n)} of {human_size(d.size)}")
                next_report += _PROGRESS_EVERY
    if n != d.size:
        raise DigestMismatch(f"{what} {d.digest}: {n} bytes, its descriptor says {d.size}",
                             hint=_TAMPERED)
    if h.hexdigest() != want:
        raise DigestMismatch(f"{what} {d.digest}: content is {alg}:{h.hexdigest()}",
                             hint=_TAMPERED)


class Store:
    """The invoking user's image store. Every method that changes it takes the lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._holds: dict[Path, int] = {}  # staging folder -> the descriptor of its lock

    @classmethod
    def open(cls) -> Store:
        """The invoking user's store, created (mode 0700) if missing.

        Raises HostError if the data folder belongs to someone else.
        """
        root = paths.ensure_private_dir(paths.ensure_private_dir(paths.data_dir()) / "images")
        for sub in ("blobs", "layers", "unpacked", "tmp"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        return cls(root)

    # --- plumbing ------------------------------------------------------------

    @contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> _Index:
        path = self.root / "index.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return _Index({}, {})
        except ValueError as e:
            raise MalformedInput(f"the image index {path} is corrupt ({e})",
                                 hint="restore it from a backup or remove it and import again"
                                 ) from e
        names, images = data.get("names"), data.get("images")
        if not isinstance(names, dict) or not isinstance(images, dict):
            raise MalformedInput(f"the image index {path} is corrupt",
                                 hint="restore it from a backup or remove it and import again")
        return _Index(dict(names), dict(images))

    def _write_index(self, idx: _Index) -> None:
        import tempfile

        data = json.dumps({"version": 1, "names": idx.names, "images": idx.images},
                          indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".index-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / "index.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    @contextmanager
    def _staging(self, prefix: str) -> Iterator[Path]:
        """A private folder under tmp/, locked while in use and removed afterwards."""
        import tempfile

        from secpod.images._unpack import force_rmtree

        self._sweep()
        stage = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))
        fd = os.open(stage / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._holds[stage] = fd
        try:
            yield stage
        finally:
            del self._holds[stage]
            try:
                force_rmtree(stage)
            finally:
                os.close(fd)

    def _sweep(self) -> None:
        """Remove staging left by a killed secpod: its lock is no longer held."""
        from secpod.images._unpack import force_rmtree

        tmp = self.root / "tmp"
        for entry in tmp.iterdir():
            lock = entry / ".lock"
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                force_rmtree(entry)
            finally:
                os.close(fd)

    def blob_path(self, digest: str) -> Path:
        """Where the blob of ``digest`` lives (it may not exist). Raises MalformedInput."""
        from secpod.images._manifest import check_digest

        alg, _, hexpart = check_digest(digest, "blob").partition(":")
        return self.root / "blobs" / alg / hexpart

    def manifest_bytes(self, digest: str) -> bytes:
        """The stored manifest of image ``digest``. Raises NotFound."""
        path = self.blob_path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no manifest {digest} in the store", hint=_NOT_FOUND_HINT) from None

    def _unpacked(self, digest: str) -> Path:
        return self.root / "unpacked" / digest.partition(":")[2]

    def _layer_dir(self, diff_id: str) -> Path:
        """Where the layer ``diff_id`` is unpacked: complete once it exists (a layer is
        staged under tmp/ and moved in by one rename)."""
        from secpod.images._manifest import check_digest

        return self.root / "layers" / check_digest(diff_id, "diff_id").partition(":")[2]

    def _layers_of(self, digest: str) -> builtins.list[tuple[str, int]]:
        """The (diff_id, bytes) of the layer trees image ``digest`` links, bottom first;
        empty for an image without layers.json (its rootfs is its own)."""
        try:
            data = json.loads((self._unpacked(digest) / "layers.json").read_bytes())
        except FileNotFoundError:
            return []
        return [(str(x["diff_id"]), int(x["bytes"])) for x in data["layers"]]

    def _record(self, digest: str, idx: _Index) -> ImageRecord:
        from secpod.images._content import recorded

        manifest = parse_manifest(self.manifest_bytes(digest), f"stored manifest {digest}")
        try:
            config_bytes = self.blob_path(manifest.config.digest).read_bytes()
            report = json.loads((self._unpacked(digest) / "report.json").read_bytes())
            content = recorded(self._unpacked(digest))
            layers = self._layers_of(digest)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MalformedInput(f"the store's copy of image {digest} is damaged ({e})",
                                 hint=f"secpod image rm -f {digest} and import it again") from e
        config = parse_config(config_bytes, len(manifest.layers), f"stored config of {digest}")
        created = config.get("created")
        return ImageRecord(
            digest=digest, names=idx.names_of(digest), config_digest=manifest.config.digest,
            config=config, layers=tuple(d.raw for d in manifest.layers),
            size=manifest.config.size + sum(d.size for d in manifest.layers),
            created=created if isinstance(created, str) else "",
            rootfs=self._unpacked(digest) / "rootfs", unpack_report=report, content=content,
            unpacked_layers=tuple(layers))

    def _lookup(self, idx: _Index, ref: str) -> tuple[str, str | None]:
        """(manifest digest, the normalised name if ``ref`` named it)."""
        try:
            parsed = reference.parse(ref)
        except UsageError:
            parsed = None
        if parsed is not None:
            if parsed.digest:
                if parsed.digest in idx.images:
                    return parsed.digest, None
            elif str(parsed) in idx.names:
                return idx.names[str(parsed)], str(parsed)
        m = _HEX_REF.fullmatch(ref)
        if m:
            hits = [d for d in idx.images if d.partition(":")[2].startswith(m.group(1))]
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                raise UsageError(f"{ref!r} matches {len(hits)} images",
                                 hint="give more digits of the digest")
        raise NotFound(f"no such image: {ref}", hint=_NOT_FOUND_HINT)

    # --- reading -----------------------------------------------------------------

    def resolve(self, ref: str) -> ImageRecord:
        """The image a name (familiar or full), a manifest digest, or a unique digest prefix
        of at least 12 hex digits refers to. Raises NotFound, or UsageError if ambiguous."""
        with self._lock(shared=True):
            idx = self._read_index()
            digest, _ = self._lookup(idx, ref)
            return self._record(digest, idx)

    def list(self) -> builtins.list[ImageRecord]:
        """Every image in the store, newest import first."""
        with self._lock(shared=True):
            idx = self._read_index()
            order = sorted(idx.images, key=lambda d: str(idx.images[d].get("imported", "")),
                           reverse=True)
            return [self._record(d, idx) for d in order]

    # --- adding --------------------------------------------------------------------

    def add_image(self, manifest_bytes: bytes, source: BlobSource, *, names: builtins.list[str],
                  progress: Progress | None = None,
                  before_commit: BeforeCommit | None = None) -> ImageRecord:
        """Verify every blob of ``manifest_bytes`` from ``source``, store them, unpack the
        root filesystem, and point ``names`` at the image.

        A name that pointed at another image moves (said through ``progress``).
        ``before_commit(record, moved_names)`` runs under the lock just before the
        index changes (the audit record goes there); if it raises, nothing changes.
        Raises DigestMismatch, HostileArchive, MalformedInput, NotFound, UsageError,
        Conflict; on any failure (or interrupt) the store is as it was.
        """
        from secpod.images._pipeline import LayerJob, Pipe, Syncer, UnpackThread
        from secpod.images._unpack import Limits

        say = progress or (lambda _m: None)
        manifest = parse_manifest(manifest_bytes)
        digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        wanted = [_normalise_name(n) for n in names]
        limits = Limits.from_env()
        with self._staging("import-") as stage:
            staged: dict[str, Path] = {}
            blobs = [("config", manifest.config)] + [
                (f"layer {i + 1}/{len(manifest.layers)}", d)
                for i, d in enumerate(manifest.layers)]
            unpacked = stage / "unpacked"
            jobs: builtins.list[LayerJob] | None = None
            pipe = Pipe()
            syncer = Syncer()
            unpack: UnpackThread | None = None
            # An error found in the config is raised only once every blob is verified,
            # so a tampered blob is always reported as such (as when verifying came first).
            config_error: Error | None = None
            try:
                for what, d in blobs:
                    if d.digest in staged or self._has_blob(d):
                        pipe.complete(d.digest, staged.get(d.digest) or self.blob_path(d.digest),
                                      d.size)
                    else:
                        dest = stage / "blobs" / d.digest.replace(":", "-")
                        blob = pipe.start(d.digest, dest)
                        with source.open_blob(d.raw) as src:
                            _copy_verified(src, dest, d, what, say, partial(pipe.wrote, blob))
                        pipe.finish(blob)
                        syncer.add(dest)
                        staged[d.digest] = dest
                        if what != "config":
                            say(f"{what} {d.digest[7:19]}: {human_size(d.size)} verified")
                    if what != "config":
                        continue
                    try:
                        config_bytes = (staged.get(d.digest) or self.blob_path(d.digest)
                                        ).read_bytes()
                        config = parse_config(config_bytes, len(manifest.layers))
                    except Error as e:
                        config_error = e
                        continue
                    if self._unpacked(digest).is_dir():
                        continue
                    jobs = self._layer_jobs(manifest, config["rootfs"]["diff_ids"],
                                            stage / "layers")
                    unpack = UnpackThread(pipe, limits, jobs, say, self._holds[stage])
                    unpack.start()
                if config_error is not None:
                    raise config_error
                if unpack is not None:
                    unpack.join()
                    if unpack.error is not None:
                        raise unpack.error
                syncer.wait()
                mpath = stage / "manifest"
                mpath.write_bytes(manifest_bytes)
                staged.setdefault(digest, mpath)
                farm = None if jobs is None else _FarmPlan(
                    jobs, unpacked, limits, unpack.unpacker if unpack else None,
                    self._holds[stage])
                return self._commit(digest, manifest, staged, farm, wanted, say,
                                    before_commit)
            finally:
                syncer.stop()
                pipe.abort()
                if unpack is not None:
                    unpack.join()
                    if unpack.unpacker is not None:
                        unpack.unpacker.close()

    def _layer_jobs(self, manifest: Any, diff_ids: builtins.list[str], staged: Path,
                    ) -> builtins.list[Any]:
        """What the unpacking thread does with each layer: unpack it into ``staged``
        unless the store has its tree already (then only check a blob it fetches)."""
        from secpod.images._pipeline import LayerJob

        n = len(manifest.layers)
        jobs = []
        for i, ld in enumerate(manifest.layers):
            present = self._layer_dir(diff_ids[i]).is_dir()
            jobs.append(LayerJob(
                f"layer {i + 1}/{n} ({ld.digest[7:19]})", ld.digest, diff_ids[i],
                None if present else staged / diff_ids[i].partition(":")[2],
                check=present and not self._has_blob(ld)))
        return jobs

    def _has_blob(self, d: Descriptor) -> bool:
        try:
            return self.blob_path(d.digest).stat().st_size == d.size
        except FileNotFoundError:
            return False

    def _commit(self, digest: str, manifest: Any, staged: dict[str, Path],
                farm: _FarmPlan | None, wanted: builtins.list[str], say: Progress,
                before_commit: BeforeCommit | None) -> ImageRecord:
        from secpod.images._unpack import force_rmtree

        with self._lock():
            if farm is None or self._unpacked(digest).is_dir():
                return self._commit_locked(digest, manifest, staged, None, wanted, say,
                                           before_commit)
            layers, new = self._farm_sources(farm)
            shared = {j.diff_id for j in farm.jobs} - set(new)
            idx = self._read_index()
            affected = [d for d in idx.images if d != digest
                        and shared & {x for x, _n in self._layers_of(d)}]
            with self._relinking(affected, f"image {digest} links its layers"):
                try:
                    self._build_farm(farm, layers)
                    return self._commit_locked(digest, manifest, staged, (farm, new), wanted,
                                               say, before_commit)
                except BaseException:
                    # Its links are in the shared layers' inodes: unlinked before those
                    # images are recorded again.
                    force_rmtree(farm.unpacked)
                    raise

    def _farm_sources(self, farm: _FarmPlan,
                      ) -> tuple[builtins.list[tuple[str, Path, dict[str, Any]]],
                                 dict[str, Path]]:
        """(the farm's layers: what, tree, record; the staged layers to move in, by
        diff_id). A layer already in the store is taken from there."""
        layers = []
        new: dict[str, Path] = {}
        for job in farm.jobs:
            final = self._layer_dir(job.diff_id)
            if final.is_dir():
                src = final
            elif job.tree is not None and job.tree.is_dir():
                src = new[job.diff_id] = job.tree
            else:
                raise Conflict("the store changed during the import (an image was removed)",
                               hint="run the import again")
            try:
                meta = json.loads((src / "layer.json").read_bytes())
            except (OSError, ValueError) as e:
                raise MalformedInput(f"the store's layer {job.diff_id} is damaged ({e})",
                                     hint="remove the images that use it (secpod image rm "
                                     "-f) and import them again") from e
            layers.append((job.what, src / "tree", meta))
        return layers, new

    def _build_farm(self, farm: _FarmPlan,
                    layers: builtins.list[tuple[str, Path, dict[str, Any]]]) -> None:
        rootfs = farm.unpacked / "rootfs"
        rootfs.mkdir(parents=True)
        rootfs.chmod(0o755)  # the container's "/", whatever the umask
        unpacker = farm.unpacker or _new_unpacker(farm.limits, farm.hold)
        try:
            report = unpacker.farm(rootfs, layers)
        finally:
            if unpacker is not farm.unpacker:
                unpacker.close()
        (farm.unpacked / "report.json").write_text(json.dumps(report, sort_keys=True))
        (farm.unpacked / "layers.json").write_text(json.dumps({"layers": [
            {"diff_id": j.diff_id, "bytes": int(m["report"].get("bytes", 0))}
            for j, (_w, _t, m) in zip(farm.jobs, layers, strict=True)]}, indent=1))

    @contextmanager
    def _relinking(self, images: builtins.list[str], why: str) -> Iterator[None]:
        """Around a link or unlink of files that ``images`` share (which changes their
        ctime, part of their content record): each is checked as before a strict run
        first, and the ones that pass are recorded again afterwards, audited as an
        ``image.verify`` (``details.relinked``) that carries the new content digest. One
        that fails stays refused, as it was. Called with the lock held."""
        from secpod import audit
        from secpod.images._content import check, take

        ok: builtins.list[tuple[str, Any]] = []
        for d in images:
            try:
                m = parse_manifest(self.manifest_bytes(d), f"stored manifest {d}")
                check(self._unpacked(d), m, self.blob_path, d)
            except Error:
                continue
            ok.append((d, m))
        try:
            yield
        finally:
            for d, m in ok:
                content = take(self._unpacked(d), m, self.blob_path,
                               [m.config.digest, *(x.digest for x in m.layers)])
                audit.record("image.verify", "ok", image_digest=d,
                             details={"deep": False, "relinked": why, "content": content})

    def _commit_locked(self, digest: str, manifest: Any, staged: dict[str, Path],
                       farm: tuple[_FarmPlan, dict[str, Path]] | None,
                       wanted: builtins.list[str], say: Progress,
                       before_commit: BeforeCommit | None) -> ImageRecord:
        from secpod.images._unpack import force_rmtree

        moved_in: builtins.list[Path] = []
        hashed: set[str] = set()  # blobs this import hashed and moved in
        try:
            if farm is not None:
                for diff_id, src in farm[1].items():
                    final_layer = self._layer_dir(diff_id)
                    os.rename(src, final_layer)
                    moved_in.append(final_layer)
            for d in [manifest.config, *manifest.layers]:
                if d.digest not in staged and not self._has_blob(d):
                    raise Conflict("the store changed during the import (an image was "
                                   "removed)", hint="run the import again")
            for blob_digest, src in staged.items():
                target = self.blob_path(blob_digest)
                if not target.exists():
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    os.rename(src, target)
                    moved_in.append(target)
                    hashed.add(blob_digest)
            final = self._unpacked(digest)
            if farm is None and not final.is_dir():
                raise Conflict("the store changed during the import (an image was "
                               "removed)", hint="run the import again")
            if farm is not None:
                os.rename(farm[0].unpacked, final)
                moved_in.append(final)
                # What was verified, recorded once it is where it stays (a rename
                # changes a blob's ctime): checked before every strict run.
                from secpod.images._content import take

                take(final, manifest, self.blob_path, hashed)
            idx = self._read_index()
            moved = [n for n in wanted if idx.names.get(n) not in (None, digest)]
            previous = {n: idx.names[n] for n in moved}
            for n in wanted:
                idx.names[n] = digest
            idx.images.setdefault(digest, {
                "imported": datetime.now(UTC).isoformat(timespec="seconds")})
            record = self._record(digest, idx)
            if before_commit is not None:
                before_commit(record, moved)
            self._write_index(idx)
        except BaseException:
            for path in moved_in:
                force_rmtree(path)
            raise
        for n in moved:
            say(f"name {_familiar(n)} moved from image {previous[n][7:19]} to {digest[7:19]}")
        return record

    def import_path(self, path: Path, *, name: str | None = None, rootfs: bool = False,
                    progress: Progress | None = None) -> ImageRecord:
        """Import an OCI layout folder, oci-archive or docker-archive (detected), or with
        ``rootfs`` a plain root filesystem folder; audited as ``image.import``.

        ``name`` overrides the names the image carries (and picks among several).
        Raises NotFound, MalformedInput, DigestMismatch, HostileArchive, UsageError,
        AuditError; nothing is left behind on failure.
        """
        from secpod import audit
        from secpod.images._sources import load

        audited = False
        details: dict[str, Any] = {"source": str(path)}

        def record_ok(rec: ImageRecord, moved: builtins.list[str]) -> None:
            nonlocal audited
            if moved:
                details["moved_names"] = moved
            details["content"] = rec.content
            audit.record("image.import", "ok", image_ref=(rec.names or (None,))[0],
                         image_digest=rec.digest, details=details)
            audited = True

        try:
            if name is not None:
                _normalise_name(name)
            if rootfs:
                details["format"] = "rootfs"
                return self._import_rootfs(path, name, progress, record_ok)
            loaded = load(path, name=name)
            details["format"] = loaded.format
            try:
                return self.add_image(loaded.manifest_bytes, loaded.source,
                                      names=loaded.names, progress=progress,
                                      before_commit=record_ok)
            finally:
                loaded.close()
        except (Error, KeyboardInterrupt) as e:
            if not audited:
                audit.record("image.import", "error", image_ref=name,
                             reason=failure_reason(e), details=details)
            raise

    def _import_rootfs(self, path: Path, name: str | None, progress: Progress | None,
                       before_commit: BeforeCommit) -> ImageRecord:
        from secpod.images._sources import DirTree, LayoutSource, _load_layout
        from secpod.images.build import write_layout

        if not path.is_dir() and not path.is_file():
            raise NotFound(f"{path}: no such folder or file", hint="--rootfs takes a root "
                           "filesystem folder or a tar of one (plain, gzip or zstd)")
        with self._staging("rootfs-") as stage:
            # No compression: the layer stays in this store, and gzip would be most of the
            # import's time (docs/BENCHMARKS.md).
            write_layout(path, stage / "layout", compress=False)
            loaded = _load_layout(DirTree(stage / "layout"), None, "rootfs")
            assert isinstance(loaded.source, LayoutSource)
            return self.add_image(loaded.manifest_bytes, loaded.source,
                                  names=[name] if name else [], progress=progress,
                                  before_commit=before_commit)

    # --- checking what was verified ----------------------------------------------------

    def check_content(self, image: ImageRecord, ref: str) -> str:
        """Check that ``image`` is still what was verified when it entered the store
        (secpod.images._content: the config hashed again, the layer blobs' stat, one
        walk of the unpacked tree); return its content digest. Raises ContentChanged
        naming what changed."""
        from secpod.images._content import check

        with self._lock(shared=True):
            manifest = parse_manifest(self.manifest_bytes(image.digest),
                                      f"stored manifest {image.digest}")
            return check(self._unpacked(image.digest), manifest, self.blob_path, ref)

    def verify(self, ref: str, *, deep: bool = False,
               progress: Progress | None = None) -> tuple[ImageRecord, str]:
        """``secpod image verify``: the run's check, or with ``deep`` every blob hashed
        again and the layers unpacked again to compare the tree file by file, after
        which the image is recorded afresh. Audited as ``image.verify`` (the content
        digest goes with the record). Returns (image, content digest).

        Raises ContentChanged (refused), NotFound, and what unpacking raises.
        """
        from secpod import audit

        image: ImageRecord | None = None
        try:
            if not deep:
                image = self.resolve(ref)
                content = self.check_content(image, ref)
            else:
                content, image = self._verify_deep(ref, progress or (lambda _m: None))
        except (Error, KeyboardInterrupt) as e:
            from secpod.errors import ContentChanged

            audit.record("image.verify", "refused" if isinstance(e, ContentChanged) else "error",
                         image_ref=ref, image_digest=image.digest if image else None,
                         reason=failure_reason(e), details={"deep": deep})
            raise
        audit.record("image.verify", "ok", image_ref=ref, image_digest=image.digest,
                     details={"deep": deep, "content": content})
        return image, content

    def _verify_deep(self, ref: str, say: Progress) -> tuple[str, ImageRecord]:
        from secpod.images._content import deep

        with self._staging("verify-") as scratch, self._lock():
            idx = self._read_index()
            digest, _ = self._lookup(idx, ref)
            image = self._record(digest, idx)
            manifest_bytes = self.manifest_bytes(digest)
            if "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() != digest:
                from secpod.errors import ContentChanged

                raise ContentChanged(f"image {ref}: the stored manifest does not hash to "
                                     f"{digest}", hint=f"secpod image rm -f {ref} and import "
                                     "or pull it again")
            manifest = parse_manifest(manifest_bytes, f"stored manifest {digest}")
            content = deep(self._unpacked(digest), manifest,
                           list(image.config["rootfs"]["diff_ids"]), self.blob_path, scratch,
                           ref, say)
            return content, self._record(digest, idx)

    # --- changing names, removing ----------------------------------------------------

    def tag(self, ref: str, name: str, *, progress: Progress | None = None) -> ImageRecord:
        """Point ``name`` at the image ``ref`` names (moving it from another image, said
        through ``progress``); audited as ``image.tag``. Raises NotFound, UsageError."""
        from secpod import audit

        audited = False
        try:
            new = _normalise_name(name)
            with self._lock():
                idx = self._read_index()
                digest, _ = self._lookup(idx, ref)
                old = idx.names.get(new)
                idx.names[new] = digest
                record = self._record(digest, idx)
                audit.record("image.tag", "ok", image_ref=new, image_digest=digest,
                             details={"moved_from": old} if old not in (None, digest) else None)
                audited = True
                self._write_index(idx)
        except (Error, KeyboardInterrupt) as e:
            if not audited:
                audit.record("image.tag", "error", image_ref=name,
                             reason=failure_reason(e), details={"image": ref})
            raise
        if old not in (None, digest) and progress is not None:
            progress(f"name {_familiar(new)} moved from image {old[7:19]} to {digest[7:19]}")
        return record

    def untag(self, ref: str, names: builtins.list[str] | None = None) -> builtins.list[str]:
        """Take ``names`` (all the image's names when None) off the image ``ref`` names,
        keeping the image, as Podman's ``untag`` does (``image prune`` removes an image
        left without a name). Audited as ``image.untag``; returns the names removed, as
        people type them (``busybox:latest``).
        Raises NotFound (no such image, or a name that is not the image's), UsageError."""
        from secpod import audit

        audited = False
        try:
            with self._lock():
                idx = self._read_index()
                digest, _ = self._lookup(idx, ref)
                own = idx.names_of(digest)
                drop = list(own) if not names else [_normalise_name(n) for n in names]
                for n in drop:
                    if n not in own:
                        its = ", ".join(map(_familiar, own)) or "none"
                        raise NotFound(f"image {ref} has no name {_familiar(n)}",
                                       hint=f"its names: {its}")
                for n in drop:
                    del idx.names[n]
                audit.record("image.untag", "ok", image_ref=ref, image_digest=digest,
                             details={"untagged": drop})
                audited = True
                self._write_index(idx)
        except (Error, KeyboardInterrupt) as e:
            if not audited:
                audit.record("image.untag", "error", image_ref=ref, reason=failure_reason(e))
            raise
        return [_familiar(n) for n in drop]

    def remove(self, ref: str, *, force: bool = False) -> ImageRecord:
        """Remove a name; when the image has no name left (or ``ref`` is a digest) remove
        the image, its root filesystem and the blobs no other image uses. Audited as
        ``image.rm``. Returns the image as it was.

        Raises NotFound, or Conflict (nothing removed) when containers use the image
        and ``force`` is false.
        """
        from secpod import audit

        audited = False
        try:
            with self._staging("trash-") as trash, self._lock():
                idx = self._read_index()
                digest, by_name = self._lookup(idx, ref)
                record = self._record(digest, idx)
                drop = [by_name] if by_name else list(record.names)
                delete = not [n for n in record.names if n not in drop]
                users: builtins.list[str] = []
                if delete:
                    users = _containers_using(digest)
                    if users and not force:
                        audit.record("image.rm", "refused", image_ref=ref, image_digest=digest,
                                     reason=f"used by containers: {', '.join(users)}")
                        audited = True
                        raise Conflict(
                            f"image {ref} is used by containers: {', '.join(users)}",
                            hint="remove them first (`secpod rm NAME`), or use "
                                 "`secpod image rm -f`")
                for n in drop:
                    del idx.names[n]
                keep: set[str] = set()
                layer_users: dict[str, builtins.list[str]] = {}
                if delete:
                    del idx.images[digest]
                    for other in idx.images:
                        m = parse_manifest(self.manifest_bytes(other))
                        keep.update(d.digest for d in (m.config, *m.layers))
                        keep.add(other)
                        for diff_id, _n in self._layers_of(other):
                            layer_users.setdefault(diff_id, []).append(other)
                audit.record("image.rm", "ok", image_ref=ref, image_digest=digest,
                             details={"untagged": drop, "deleted": delete,
                                      **({"containers": users} if users else {})})
                audited = True
                self._write_index(idx)
                if delete:
                    self._remove_tree(digest, trash, layer_users)
                    m = parse_manifest(self.manifest_bytes(digest))
                    for blob in {digest, m.config.digest, *(d.digest for d in m.layers)}:
                        if blob not in keep:
                            self.blob_path(blob).unlink(missing_ok=True)
        except (Error, KeyboardInterrupt) as e:
            if not audited:
                audit.record("image.rm", "error", image_ref=ref, reason=failure_reason(e))
            raise
        return record

    def _remove_tree(self, digest: str, trash: Path,
                     layer_users: dict[str, builtins.list[str]]) -> None:
        """Move the rootfs of ``digest`` and the layers no other image links
        (``layer_users``: diff_id -> the other images linking it) to ``trash``. When
        other images share its layers, the rootfs is removed here (under the lock),
        between the check and the new record of those images (see :meth:`_relinking`)."""
        from secpod.images._unpack import force_rmtree

        own = [d for d, _n in self._layers_of(digest)]
        unpacked = self._unpacked(digest)
        if unpacked.exists():
            os.rename(unpacked, trash / "unpacked")
        for diff_id in dict.fromkeys(own):
            if diff_id not in layer_users and self._layer_dir(diff_id).is_dir():
                os.rename(self._layer_dir(diff_id), trash / ("layer-" + diff_id[7:]))
        affected = sorted({o for d in own for o in layer_users.get(d, ())})
        if affected:
            with self._relinking(affected, f"image {digest} was removed"):
                force_rmtree(trash / "unpacked")


@record(frozen=True)
class _FarmPlan:
    """The image's layers (secpod.images._pipeline.LayerJob), its staged folder, and
    the unpacker that unpacked its new layers (None: one is made for the farm)."""

    jobs: list[Any]
    unpacked: Path
    limits: Any
    unpacker: Any
    hold: int


def _new_unpacker(limits: Any, hold: int) -> Any:
    from secpod.images import _mapped

    return _mapped.unpacker(limits, hold)


def content_before_run(store: Store, image: ImageRecord, ref: str, confinement: Any,
                       ) -> str | None:
    """Before a run under ``strict`` (a profile that runs only signed images) or under
    the administrator's trust policy: check the image is the one verified
    (:meth:`Store.check_content`) and return its content digest; else None, unchecked.
    Raises ContentChanged, or the admin policy's error."""
    if not (confinement.profile == "strict" or confinement.require_signed):
        from secpod.signing.trust import admin_trust_policy

        if admin_trust_policy() is None:
            return None
    content = store.check_content(image, ref)
    _check_host_content(image, content)
    return content


def _check_host_content(image: ImageRecord, content: str) -> None:
    """Where a collector runs, the content record in the user's store must be the one
    the host log received when the image entered it: an owner who changed the tree and
    its record must also have sent the host a new import record (which the host log then
    shows; docs/threat-model.md). Raises ContentChanged."""
    from secpod import audit

    asked, required, recorded = audit.host_content(image.digest)
    if not asked:
        return  # no collector: the local check is all there is (or the run's record fails)
    hint = ("import or pull the image again (the host log then records its content), or "
            "run `secpod image verify --deep`")
    if recorded is None:
        if required:
            raise ContentChanged(
                f"the host log has no record of the content of {image.digest[:19]}: it "
                "entered your store before the administrator's collector ran", hint=hint)
        return
    if recorded != content:
        raise ContentChanged(
            f"the image's content record ({content[:19]}) is not the one the host log "
            f"received when it entered your store ({recorded[:19]})", hint=hint)


def _containers_using(digest: str) -> list[str]:
    """Names of containers made from ``digest``; the sandbox owns that state."""
    from secpod.sandbox.state import containers_using

    return containers_using(digest)
