"""``secpod image import|ls|inspect|verify|tag|rm``, ``save`` and ``load``: parse, call
secpod.images, print."""

from __future__ import annotations

import argparse
from pathlib import Path

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]



def _add_image(sub: _Subparsers) -> None:
    image = sub.add_parser("image", help="manage images in your store")
    isub = image.add_subparsers(dest="image_command", metavar="COMMAND")
    isub.required = True

    p = isub.add_parser("import", help="import an OCI layout, oci-archive or docker-archive",
                        description="Import an image from an OCI image layout folder, an "
                        "oci-archive tar or a docker-archive tar (docker/podman save); with "
                        "--rootfs, from a root filesystem folder or a tar of one (plain, gzip or "
                        "zstd).")
    p.add_argument("path", metavar="PATH", type=Path)
    p.add_argument("--name", metavar="NAME:TAG",
                   help="name the image (and pick it when the archive holds several)")
    p.add_argument("--rootfs", action="store_true",
                   help="PATH is a root filesystem folder or tar (plain, gzip, zstd): make a "
                   "one-layer image of it")
    p.add_argument("--json", action="store_true", help="print the image as JSON")
    p.set_defaults(func=_import)

    p = isub.add_parser("ls", help="list your images")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print image IDs only")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="a Go template per image (docs/formatting.md), or json")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="keys: " + ", ".join(IMAGE_FILTERS))
    p.set_defaults(func=_ls)

    p = isub.add_parser("inspect", help="images as JSON, in Docker's shape (secpod's record "
                        "under Secpod)")
    p.add_argument("-f", "--format", metavar="TEMPLATE",
                   help="a Go template per image, e.g. '{{.Architecture}}' (docs/formatting.md)")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.set_defaults(func=_inspect)

    p = isub.add_parser("untag", help="take names off an image, keeping it (all its names "
                        "when none are given)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("names", metavar="NAME", nargs="*")
    p.set_defaults(func=_untag)

    from secpod.cli._prune import add_image_prune

    add_image_prune(isub)

    p = isub.add_parser("verify", help="check an image is what was verified when stored",
                        description="Check that a stored image is still what was verified "
                        "when it was imported or pulled: the config blob hashed again, the "
                        "layer blobs' size, inode and times, and one walk of the unpacked "
                        "tree (the check every strict run makes). With --deep, hash every "
                        "blob again and unpack the layers again to compare the tree file by "
                        "file; if all is the same, record the image afresh. Exit 0: intact; "
                        "1: changed (what changed on stderr).")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--deep", action="store_true",
                   help="re-hash every blob and compare the tree with a fresh unpack")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_verify)

    p = isub.add_parser("tag", help="give an image another name")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("name", metavar="NAME[:TAG]")
    p.set_defaults(func=_tag)

    p = isub.add_parser("rm", help="remove image names, and images left without a name")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("-f", "--force", action="store_true",
                   help="remove even if containers use the image")
    p.set_defaults(func=_rm)


def _add_save(sub: _Subparsers) -> None:
    p = sub.add_parser("save", help="write an image to a tar archive (docker save)",
                       description="Write one image from your store as a docker-archive "
                       "(the default, as docker save and podman save write) or an "
                       "oci-archive, to -o FILE or to standard output.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("-o", "--output", type=Path, metavar="FILE")
    p.add_argument("--format", default="docker-archive",
                   choices=("docker-archive", "oci-archive"))
    p.set_defaults(func=_save)


def _add_load(sub: _Subparsers) -> None:
    p = sub.add_parser("load", help="import an image archive (docker load)",
                       description="Import a docker-archive or oci-archive from -i FILE or "
                       "standard input, as `secpod image import` does.")
    p.add_argument("-i", "--input", type=Path, metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    p.set_defaults(func=_load)


def _save(args: argparse.Namespace) -> int:
    import sys

    from secpod.cli._output import status
    from secpod.errors import UsageError
    from secpod.images import Store
    from secpod.images.export import save

    if args.output is None and sys.stdout.isatty():
        raise UsageError("refusing to write an image archive to a terminal",
                         hint="give -o FILE, or redirect standard output")
    digest = save(Store.open(), args.image, args.output, args.format)
    if args.output is not None:
        status(f"saved {args.image} ({digest}) to {args.output}")
    return 0


def _load(args: argparse.Namespace) -> int:
    import tempfile

    from secpod import paths
    from secpod.cli._output import status
    from secpod.images import Store
    from secpod.images.export import copy_stdin_to

    store = Store.open()
    if args.input is not None:
        rec = store.import_path(args.input, progress=None if args.quiet else status)
    else:
        with tempfile.TemporaryDirectory(dir=paths.ensure_private_dir(paths.data_dir())) as d:
            archive = Path(d) / "stdin.tar"
            copy_stdin_to(archive)
            rec = store.import_path(archive, progress=None if args.quiet else status)
    if not args.quiet:
        status(f"loaded {', '.join(rec.familiar_names()) or 'an image without a name'}")
    print(rec.digest)
    return 0




def _import(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, status
    from secpod.images import Store

    rec = Store.open().import_path(args.path, name=args.name, rootfs=args.rootfs,
                                   progress=status)
    if args.json:
        emit_json(rec.as_dict())
    else:
        names = ", ".join(rec.familiar_names()) or "no name"
        status(f"imported {names} ({rec.short_id()})")
        print(rec.digest)
    return 0


#: image ls --filter: Docker's keys.
IMAGE_FILTERS = {
    "reference": "a name, or a shell pattern on it (busybox, 'docker.io/library/*')",
    "dangling": "true: images without a name; false: with one",
    "label": "an image label: KEY or KEY=VALUE",
    "before": "created before this image",
    "since": "created after this image",
}


def _named(images: list[Any]) -> list[tuple[Any, str | None]]:
    """One (image, name) per name, as Docker lists them; (image, None) for one without."""
    return [(r, n) for r in images for n in (r.names or (None,))]


def _image_rows(named: list[tuple[Any, str | None]], store_images: list[Any],
                ) -> list[dict[str, Any]]:
    """Docker's `images --format` placeholders, one row per name; the shared size counts
    the blobs another of ``store_images`` (every image in the store) also lists."""
    import time
    from datetime import datetime

    from secpod._text import ago
    from secpod.images import human_size
    from secpod.images._store import _familiar
    from secpod.images.sharing import sharing

    shares = sharing(store_images)
    now, rows = time.time(), []
    for r, name in named:
        try:
            since = ago(now - datetime.fromisoformat(r.created).timestamp()) + " ago"
        except ValueError:
            since = ""
        repo, tag = "<none>", "<none>"
        if name:
            familiar = _familiar(name)
            repo, _, tag = familiar.rpartition(":")
        rows.append({"Repository": repo, "Tag": tag, "ID": r.short_id(), "Digest": r.digest,
                     "CreatedAt": r.created, "CreatedSince": since,
                     "Size": human_size(r.size), "Name": name or "",
                     "SharedSize": human_size(shares.shared[r.digest]),
                     "UniqueSize": human_size(shares.unique[r.digest])})
    return rows


def _images_filtered(named: list[tuple[Any, str | None]],
                     values: list[str]) -> list[tuple[Any, str | None]]:
    from fnmatch import fnmatchcase

    from secpod.filters import flag, labels, parse_filters
    from secpod.images import Store
    from secpod.images._store import _familiar

    filters = parse_filters(values, IMAGE_FILTERS)
    store = Store.open()
    bounds = {k: [store.resolve(ref).created for ref in filters.get(k)]
              for k in ("before", "since")}

    def reference(name: str | None) -> Any:
        names = [name, _familiar(name)] if name else []
        return lambda v: any(n == v or fnmatchcase(n, v) or n.rpartition(":")[0] == v
                             for n in names)

    def keep(r: Any, name: str | None) -> bool:
        return filters.match({
            "reference": reference(name),
            "dangling": flag(not r.names),
            "label": labels(r.config.get("Labels")),
            "before": lambda _v: all(r.created < b for b in bounds["before"]),
            "since": lambda _v: all(r.created > b for b in bounds["since"]),
        })

    return [(r, n) for r, n in named if keep(r, n)]


def _ls(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_formatted, emit_json, emit_table
    from secpod.images import Store, human_size

    images = every = Store.open().list()
    named = _named(images)
    if args.filter:
        named = _images_filtered(named, args.filter)
        images = [r for r in images if any(r is x for x, _ in named)]
    if args.json:
        from secpod.images.sharing import sharing

        shares = sharing(every)
        emit_json([{**r.as_dict(), "shared_size": shares.shared[r.digest],
                    "unique_size": shares.unique[r.digest]} for r in images])
    elif args.quiet:
        for r in images:
            print(r.short_id())
    elif args.format:
        emit_formatted(args.format, _image_rows(named, every), json_lines=True,
                       headers={"ID": "IMAGE ID", "CreatedSince": "CREATED",
                                "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"})
    else:
        from secpod.images._store import _familiar

        rows = [(_familiar(n) if n else "<none>", r.short_id(), human_size(r.size),
                 r.created[:19].replace("T", " ") or "-") for r, n in named]
        emit_table(("NAME", "ID", "SIZE", "CREATED"), rows)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_formatted, emit_json
    from secpod.images import Store
    from secpod.images.views import inspect_view

    store = Store.open()
    views = [inspect_view(store.resolve(ref)) for ref in args.images]
    if args.format:
        emit_formatted(args.format, views)
    else:
        emit_json(views)
    return 0


def _untag(args: argparse.Namespace) -> int:
    from secpod.images import Store

    for name in Store.open().untag(args.image, args.names or None):
        print(f"untagged: {name}")
    return 0


def _history_flags(p: argparse.ArgumentParser) -> None:
    from secpod.cli._flags import bool_flag

    p.add_argument("image", metavar="IMAGE")
    bool_flag(p, "-H", "--human", dest="human", default=True,
              help="sizes and times for people (the default; --human=false: raw)")
    bool_flag(p, "--no-trunc", dest="no_trunc", help="do not cut CREATED BY short")
    bool_flag(p, "-q", "--quiet", dest="quiet", help="image ids only")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="a Go template per step (.ID .Created .CreatedBy .Size .Comment), "
                        "or json")
    p.set_defaults(func=_history)


def _history(args: argparse.Namespace) -> int:
    import time
    from datetime import datetime

    from secpod._text import ago
    from secpod.cli._output import emit_formatted, emit_table
    from secpod.images import Store, human_size
    from secpod.images.views import history_rows

    rows = history_rows(Store.open().resolve(args.image))
    if args.quiet:
        for r in rows:
            print(r["ID"] if args.no_trunc or r["ID"] == "<missing>"
                  else r["ID"].partition(":")[2][:12])
        return 0
    if args.format:
        emit_formatted(args.format, rows, json_lines=True,
                       headers={"ID": "IMAGE", "CreatedBy": "CREATED BY"})
        return 0

    def when(stamp: str) -> str:
        if not args.human:
            return stamp
        try:
            then = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return stamp
        return ago(time.time() - then) + " ago"

    emit_table(("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"),
               [(r["ID"] if args.no_trunc or r["ID"] == "<missing>"
                 else r["ID"].partition(":")[2][:12], when(r["Created"]),
                 r["CreatedBy"] if args.no_trunc else r["CreatedBy"][:45],
                 human_size(r["Size"]) if args.human else str(r["Size"]), r["Comment"])
                for r in rows])
    return 0


def _add_history(sub: _Subparsers) -> None:
    _history_flags(sub.add_parser("history", help="the steps that made an image (image "
                                                  "history)"))


def _verify(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_json, status
    from secpod.images import Store

    rec, content = Store.open().verify(args.image, deep=args.deep, progress=status)
    if args.json:
        emit_json({"image": args.image, "digest": rec.digest, "deep": args.deep,
                   "intact": True, "content": content})
    else:
        status(f"{args.image} ({rec.short_id()}) is what was verified"
               + (" (every blob hashed, the tree compared with its layers)" if args.deep
                  else ""))
        print(content)
    return 0


def _tag(args: argparse.Namespace) -> int:
    from secpod.cli._output import status
    from secpod.images import Store

    rec = Store.open().tag(args.image, args.name, progress=status)
    status(f"tagged {rec.short_id()} as {args.name}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    from secpod.errors import NotFound
    from secpod.images import Store

    store = Store.open()
    for ref in args.images:
        rec = store.remove(ref, force=args.force)
        try:
            store.resolve(rec.digest)
        except NotFound:
            for n in rec.familiar_names():
                print(f"untagged: {n}")
            print(f"deleted: {rec.digest}")
        else:
            print(f"untagged: {ref}")
    return 0


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "image": _add_image,
    "save": _add_save,
    "load": _add_load,
    "history": _add_history,
}
