"""``system df``, ``system prune``, ``container prune`` and ``image prune`` (Docker's
words): parse, call secpod.sandbox.usage, print. Removed ids go to stdout, one a line,
then the space reclaimed, as Docker prints them."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._flags import bool_flag

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _confirmed(args: argparse.Namespace, what: str) -> bool:
    """Docker's question, unless -f; anything but y/yes (or end of input) is no."""
    if args.force:
        return True
    print(f"WARNING! This will remove:\n{what}\nAre you sure you want to continue? [y/N] ",
          end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _report(pruned: Any) -> int:
    from secpod.images import human_size

    code = _report_items(pruned)
    print(f"Total reclaimed space: {human_size(pruned.reclaimed)}")
    return code


def _container_prune(args: argparse.Namespace) -> int:
    from secpod.sandbox import usage

    if not _confirmed(args, "  - all stopped containers (created or exited)"):
        return 1
    return _report(usage.prune_containers())


def _image_prune(args: argparse.Namespace) -> int:
    from secpod.sandbox import usage

    what = ("  - all images without at least one container made from them" if args.all
            else "  - all images without a name (dangling)")
    if not _confirmed(args, what):
        return 1
    return _report(usage.prune_images(all_unused=args.all))


def _system_prune(args: argparse.Namespace) -> int:
    from secpod.errors import UsageError
    from secpod.sandbox import usage

    if args.volumes:
        raise UsageError("--volumes: Docker's removes anonymous volumes, and secpod has "
                         "only named ones",
                         hint="secpod volume prune removes the volumes no container uses")
    images = ("  - all images without at least one container made from them" if args.all
              else "  - all images without a name (dangling)")
    if not _confirmed(args, "  - all stopped containers (created or exited)\n" + images):
        return 1
    containers = usage.prune_containers()  # first: their images may then be unused
    if containers.removed:
        print("Deleted Containers:")
    code = _report_items(containers)
    imgs = usage.prune_images(all_unused=args.all)
    if imgs.removed:
        print("Deleted Images:")
    code |= _report_items(imgs)
    from secpod.images import human_size

    print(f"Total reclaimed space: {human_size(containers.reclaimed + imgs.reclaimed)}")
    return code


def _report_items(p: Any) -> int:
    for item in p.removed:
        print(item)
    for item, reason in p.failed:
        print(f"secpod: error: not removed: {item}: {reason}", file=sys.stderr)
    return 1 if p.failed else 0


def _df(args: argparse.Namespace) -> int:
    from secpod.cli._output import emit_formatted, emit_table
    from secpod.errors import UsageError
    from secpod.sandbox import usage

    if args.verbose:
        if args.format:
            raise UsageError("system df: -v and --format cannot go together",
                             hint="`image ls --format '{{.SharedSize}} {{.UniqueSize}}'` "
                                  "gives each image's shared and unique size")
        return _df_verbose()
    rows = usage.disk_usage()
    if args.format:
        emit_formatted(args.format, [r.as_dict() for r in rows], json_lines=True)
        return 0
    emit_table(("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"),
               [(d["Type"], str(d["TotalCount"]), str(d["Active"]), d["Size"],
                 d["Reclaimable"] + (f" ({100 * r.reclaimable // r.size}%)" if r.size else ""))
                for r in rows for d in [r.as_dict()]])
    return 0


def _df_verbose() -> int:
    """Docker's ``system df -v`` for images: each one's size, shared and unique size and
    containers, then what sharing saves (docs/adr/0010-shared-layers.md)."""
    from secpod.cli._output import emit_table
    from secpod.images import human_size
    from secpod.images._store import _familiar
    from secpod.sandbox import usage

    images, shares = usage.image_usage()
    print("Images space usage:\n")
    emit_table(("NAME", "ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"),
               [(_familiar(n) if n else "<none>", u.image.short_id(),
                 human_size(shares.size[u.image.digest]), human_size(u.shared),
                 human_size(u.unique),
                 str(u.containers))
                for u in images for n in (u.image.names or (None,))])
    blobs = "blob" if shares.shared_blobs == 1 else "blobs"
    layers = "layer" if shares.shared_layers == 1 else "layers"
    print(f"\nShared: {shares.shared_blobs} {blobs} and {shares.shared_layers} unpacked "
          f"{layers}; the images take "
          f"{human_size(shares.stored)}, {human_size(shares.saved)} less than "
          f"{human_size(shares.listed)} each alone")
    return 0


def _force_flag(p: argparse.ArgumentParser) -> None:
    bool_flag(p, "-f", "--force", dest="force", help="do not ask for confirmation")


def add_system_commands(ssub: _Subparsers) -> None:
    """``system df`` and ``system prune`` (the ``system`` group is _policies')."""
    q = ssub.add_parser("df", help="disk space used by images and containers")
    q.add_argument("--format", metavar="TEMPLATE",
                   help="a Go template per row (.Type .TotalCount .Active .Size "
                        ".Reclaimable .Saved), or json")
    bool_flag(q, "-v", "--verbose", dest="verbose",
              help="each image's size, shared size, unique size and containers")
    q.set_defaults(func=_df)
    q = ssub.add_parser("prune", help="remove stopped containers and unused images")
    bool_flag(q, "-a", "--all", dest="all",
              help="every image no container was made from, not only those without a name")
    bool_flag(q, "--volumes", dest="volumes",
              help="refused: secpod has no anonymous volumes (see secpod volume prune)")
    _force_flag(q)
    q.set_defaults(func=_system_prune)


def add_image_prune(isub: _Subparsers) -> None:
    """``image prune`` (under _images' ``image`` group)."""
    q = isub.add_parser("prune", help="remove images without a name (-a: all unused ones)")
    bool_flag(q, "-a", "--all", dest="all", help="every image no container was made from")
    _force_flag(q)
    q.set_defaults(func=_image_prune)


def _add_container_prune(sub: _Subparsers) -> None:
    # `container prune` (canonical() rewrites it); not listed as a command of its own.
    q = sub.add_parser("container-prune", prog="secpod container prune",
                       description="Remove every stopped container (created or exited).")
    _force_flag(q)
    q.set_defaults(func=_container_prune)


# Each command's parser, in the order of `secpod --help`.
PARSERS = {
    "container-prune": _add_container_prune,
}
