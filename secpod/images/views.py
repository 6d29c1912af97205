"""An image as Docker's and Podman's scripts read it: ``image inspect`` and ``history``.

``Id`` is the config digest and ``Digest`` the manifest digest (Docker's and Podman's
meanings; secpod's own listings name images by the manifest digest, which signatures
are made over). ``RepoTags`` are the names as people type them (``busybox:latest``);
``RepoDigests`` the repository at the manifest digest. secpod's own record (the
unpack report, the verified content, where the tree is) is under ``Secpod``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.images._store import ImageRecord


def inspect_view(image: ImageRecord) -> dict[str, Any]:
    cfg = image.config
    repos = sorted({n.rpartition(":")[0] if ":" in n.rpartition("/")[2] else n
                    for n in image.familiar_names()})
    return {
        "Id": image.config_digest,
        "Digest": image.digest,
        "RepoTags": list(image.familiar_names()),
        "RepoDigests": [f"{r}@{image.digest}" for r in repos],
        "Created": image.created or "0001-01-01T00:00:00Z",
        "Author": cfg.get("author", ""),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Size": image.size,
        "VirtualSize": image.size,
        "Config": dict(cfg.get("config") or {}),
        "RootFS": {"Type": (cfg.get("rootfs") or {}).get("type", "layers"),
                   "Layers": list((cfg.get("rootfs") or {}).get("diff_ids") or [])},
        "History": list(cfg.get("history") or []),
        "Labels": dict((cfg.get("config") or {}).get("Labels") or {}),
        "Secpod": image.as_dict(),
    }


def history_rows(image: ImageRecord) -> list[dict[str, Any]]:
    """Docker's ``history``: newest first; each step that made a layer has its size."""
    sizes = [int(d.get("size", 0)) for d in image.layers]
    rows = []
    layer = 0
    for step in image.config.get("history") or []:
        empty = bool(step.get("empty_layer"))
        size = 0 if empty or layer >= len(sizes) else sizes[layer]
        layer += 0 if empty else 1
        rows.append({"ID": "<missing>", "Created": step.get("created", ""),
                     "CreatedBy": step.get("created_by", ""), "Size": size,
                     "Comment": step.get("comment", "")})
    if not rows:  # an image without history: one row per layer, as Podman shows it
        rows = [{"ID": "<missing>", "Created": image.created, "CreatedBy": "",
                 "Size": s, "Comment": ""} for s in sizes]
    rows.reverse()
    if rows:
        rows[0]["ID"] = image.config_digest
    return rows
