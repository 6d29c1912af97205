"""``cp``, ``diff`` and ``commit``: parse, call secpod.sandbox.cp, .changes and
secpod.images.commit, print (docs/storage-cp-diff-commit.md). Data to stdout, status to stderr."""

from __future__ import annotations

import argparse
import sys

from secpod.cli._flags import bool_flag

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _cp(args: argparse.Namespace) -> int:
    from secpod.sandbox import cp

    done = cp.copy(args.src, args.dst, follow=args.follow_link, archive=args.archive)
    if not args.quiet:
        print(f"copied {done['files']} files, {done['folders']} folders, {done['links']} "
              f"links ({done['bytes']} bytes)", file=sys.stderr)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from secpod.sandbox import changes, state

    found = changes.changes(state.lookup(args.container))
    if args.format:
        from secpod.gotemplate import is_json_format

        if is_json_format(args.format):
            from secpod.cli._output import emit_json

            emit_json({changes.KINDS[k]: [p for kk, p in found if kk == k]
                       for k in changes.KINDS})
            return 0
        from secpod.cli._output import emit_formatted
        from secpod.sandbox.cp import shown

        emit_formatted(args.format, [{"Kind": k, "Path": shown(p)} for k, p in found])
        return 0
    from secpod.sandbox.cp import shown

    for kind, path in found:
        print(f"{kind} {shown(path)}")
    return 0


def _commit(args: argparse.Namespace) -> int:
    from secpod.cli._output import status
    from secpod.images import commit

    rec = commit.commit(args.container, args.image, message=args.message, author=args.author,
                        changes=args.change, pause=args.pause,
                        progress=None if args.quiet else status)
    print(rec.digest)
    return 0


def _add_cp(sub: _Subparsers) -> None:
    p = sub.add_parser("cp", help="copy files between a container and the host",
                       description="Copy SRC to DEST, one of them CONTAINER:PATH, in a "
                       "running or stopped container. Symbolic links in the container "
                       "resolve inside its root; devices and setuid/setgid files are "
                       "refused; a copy appears under its name only once complete.")
    bool_flag(p, "-L", "--follow-link", dest="follow_link",
              help="follow a symbolic link given as SRC (inside the container's root)")
    bool_flag(p, "-q", "--quiet", dest="quiet", help="say nothing on stderr")
    bool_flag(p, "-a", "--archive", dest="archive",
              help="refused (Docker's: keep the source's ids): files copied in belong "
                   "to container root, copied out to you")
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DEST")
    p.set_defaults(func=_cp)


def _add_diff(sub: _Subparsers) -> None:
    p = sub.add_parser("diff", help="what a container changed in its root (A, C, D)")
    p.add_argument("--format", metavar="TEMPLATE",
                   help="json ({added, changed, deleted}), or a Go template (.Kind .Path)")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=_diff)


def _add_commit(sub: _Subparsers) -> None:
    p = sub.add_parser("commit", help="a new image of a container's changes (one more layer)")
    p.add_argument("-m", "--message", metavar="TEXT", help="the history entry's comment")
    p.add_argument("-a", "--author", metavar="NAME", help="the image's author")
    p.add_argument("-c", "--change", action="append", default=[], metavar="'INSTR ARGS'",
                   help="CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or "
                        "WORKDIR, as in a Dockerfile")
    bool_flag(p, "-q", "--quiet", dest="quiet", help="no progress on stderr")
    bool_flag(p, "-p", "--pause", dest="pause",
              help="freeze a running container while its changes are read (needs the "
                   "cgroup freezer: refused where there is none); off by default, unlike "
                   "Docker's: the changes are read as they are on disk")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", metavar="IMAGE", nargs="?")
    p.set_defaults(func=_commit)


PARSERS = {
    "cp": _add_cp,
    "diff": _add_diff,
    "commit": _add_commit,
}
