"""``secpod commit``: a container's changes as the top layer of a new image
(docs/storage-cp-diff-commit.md).

The new image is its container's image with one more layer: the changes in the
container's ``upper/`` folder as a gzip tar with OCI whiteouts
(``secpod.sandbox.changes.write_layer``), its diff_id appended to the config's
``rootfs.diff_ids``, a ``history`` entry, and a new OCI manifest whose other layers are
the image's own blobs. The layer and config are written in a staging folder of the
store, and the image enters the store through ``Store.add_image``, as an imported one
does: every blob verified against its digest, the root filesystem unpacked by the
hostile-layer rules, the index changed under the lock at the end. A failure anywhere
(a full disk, an interrupt) leaves the store as it was: no half image.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime

from secpod.errors import Conflict, Error, Refused, UsageError
from secpod.images._manifest import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from secpod.images._store import ImageRecord

#: Docker's layer media types and OCI's for the same bytes.
_OCI_TYPES = {"application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER + "+gzip",
              "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"}

#: Dockerfile instructions ``--change`` takes (Docker's and Podman's list, less ONBUILD).
CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
           "WORKDIR")


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Apply ``--change 'INSTRUCTION ARGS'`` lines to an image config's ``config``.
    Raises UsageError naming an instruction secpod does not take."""
    cfg = config.setdefault("config", {})
    for line in changes:
        word, _, rest = line.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word not in CHANGES:
            raise UsageError(f"--change {line!r}: {word or 'nothing'} is not an instruction "
                             "commit takes", hint="one of " + ", ".join(CHANGES))
        if not rest:
            raise UsageError(f"--change {line!r}: {word} needs a value")
        if word in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if word == "CMD" else "Entrypoint"] = _exec_form(rest)
        elif word == "ENV":
            for k, v in _pairs(rest, word):
                cfg["Env"] = [e for e in cfg.get("Env") or [] if e.partition("=")[0] != k]
                cfg["Env"].append(f"{k}={v}")
        elif word == "LABEL":
            cfg.setdefault("Labels", {}).update(dict(_pairs(rest, word)))
        elif word == "EXPOSE":
            for port in rest.split():
                cfg.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif word == "VOLUME":
            for vol in _exec_form(rest):
                cfg.setdefault("Volumes", {})[vol] = {}
        else:
            cfg[{"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[word]] = rest


def _exec_form(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{rest!r} is not a JSON array of strings",
                             hint='write it as ["cmd", "arg"] or in shell form')
        return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, word: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if len(words) >= 2 and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]  # the old form: ENV KEY VALUE
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise UsageError(f"{word} {rest!r}: write KEY=VALUE")
        out.append((k, v))
    return out


def commit(ref: str, name: str | None, *, message: str | None = None,
           author: str | None = None, changes: list[str] | None = None,
           pause: bool = False, progress: Callable[[str], None] | None = None
           ) -> ImageRecord:
    """Make a new image of container ``ref``'s changes, named ``name`` (None: no name);
    audited as ``container.commit``. ``pause``: a running container is frozen while its
    changes are read (``secpod pause``; refused, and audited, where there is no
    freezer). Raises NotFound, Conflict (a read-only root), Refused, UsageError,
    HostError (a full disk, no freezer); nothing is left behind."""
    from secpod.sandbox import freezer, operations, state
    from secpod.sandbox.environment import Environment

    paused = False
    if pause:
        ctr = state.lookup(ref)
        if operations.status(ctr, Environment.load(check_host=False)
                             ) is operations.Status.RUNNING:
            freezer.pause(ref)
            paused = True
    try:
        return _commit(ref, name, message, author, changes, progress)
    finally:
        if paused:
            freezer.unpause(ref)


def _commit(ref: str, name: str | None, message: str | None, author: str | None,
            changes: list[str] | None, progress: Callable[[str], None] | None
            ) -> ImageRecord:
    from secpod.images._sources import DirTree, LayoutSource
    from secpod.images._store import Store, _normalise_name, failure_reason
    from secpod.sandbox import changes as changesmod
    from secpod.sandbox import events, state

    ctr = state.lookup(ref)
    details: dict[str, Any] = {"name": name, "message": message, "author": author,
                               "changes": list(changes or [])}
    audited = False

    def record_ok(rec: ImageRecord, moved: list[str]) -> None:
        nonlocal audited
        details.update(image=rec.digest, moved_names=moved)
        events.container("container.commit", ctr, details=details)
        audited = True

    try:
        if name is not None:
            _normalise_name(name)
        store = Store.open()
        base = store.resolve(ctr.image_digest)
        with store._staging("commit-") as stage:
            blobs = stage / "layout" / "blobs" / "sha256"
            blobs.mkdir(parents=True)
            layer_tmp = stage / "layout" / "layer.tmp"
            layer = changesmod.write_layer(ctr, str(layer_tmp))
            layer_tmp.rename(blobs / layer["digest"].partition(":")[2])
            details.update(layer=layer["digest"], diff_id=layer["diff_id"],
                           setuid_stripped=layer["setuid_stripped"])
            if layer["setuid_stripped"] and progress:
                progress(f"setuid/setgid bits stripped from {layer['setuid_stripped']} "
                         "files, as an imported layer's are")
            config = _new_config(base, ctr.name, layer["diff_id"], message, author,
                                 changes or [])
            config_bytes = json.dumps(config, sort_keys=True).encode()
            config_digest = _write_blob(blobs, config_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                           "size": len(config_bytes)},
                "layers": [_oci_layer(d) for d in base.layers] + [
                    {"mediaType": OCI_LAYER + "+gzip", "digest": layer["digest"],
                     "size": layer["size"]}],
            }
            manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
            # The image's own layers are in the store already: add_image takes them from
            # there, and only the config and the new layer from the staging folder.
            return store.add_image(manifest_bytes, LayoutSource(DirTree(stage / "layout")),
                                   names=[name] if name else [], progress=progress,
                                   before_commit=record_ok)
    except (Error, KeyboardInterrupt) as e:
        if not audited:
            outcome = "refused" if isinstance(e, (Conflict, Refused)) else "error"
            events.container("container.commit", ctr, outcome, reason=failure_reason(e),
                             details=details)
        raise


def _write_blob(blobs: Any, data: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"


def _oci_layer(d: dict[str, Any]) -> dict[str, Any]:
    """A layer descriptor of the base manifest, in OCI's media types (same bytes)."""
    out = dict(d)
    media = str(d.get("mediaType", OCI_LAYER))
    out["mediaType"] = _OCI_TYPES.get(media, media)
    return out


def _new_config(base: ImageRecord, ctr_name: str, diff_id: str, message: str | None,
                author: str | None, changes: list[str]) -> dict[str, Any]:
    import copy

    config = copy.deepcopy(base.config)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config["created"] = now
    if author:
        config["author"] = author
    apply_changes(config, changes)
    config["rootfs"] = {"type": "layers",
                        "diff_ids": [*config["rootfs"]["diff_ids"], diff_id]}
    entry: dict[str, Any] = {"created": now, "created_by": f"secpod commit {ctr_name}"}
    if message:
        entry["comment"] = message
    if author:
        entry["author"] = author
    config["history"] = [*(config.get("history") or []), entry]
    return config
