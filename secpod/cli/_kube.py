"""``secpod kube generate``: containers as a Kubernetes Pod or Deployment.
docs/kubernetes.md."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from secpod import audit
    from secpod._files import write_atomic
    from secpod.cli._output import status
    from secpod.errors import Error, NotFound, Refused
    from secpod.kube import generate
    from secpod.sandbox import state

    details = {"containers": list(args.containers), "type": args.type,
               "output": str(args.output) if args.output else None}
    try:
        ctrs = []
        for ref in args.containers:   # a container, or a pod: its members
            try:
                ctrs.append(state.lookup(ref))
            except NotFound as e:
                from secpod.pods import lifecycle, record

                try:
                    pod = record.lookup(ref)
                except NotFound:
                    raise NotFound(f"No such container or pod: {ref}",
                                   hint="secpod ps -a and secpod pod ps list them") from e
                ctrs += lifecycle.members(pod)
        out = generate.generate(ctrs, args.type)
    except Error as e:
        if isinstance(e, Refused):
            audit.record("kube.generate", "refused", reason=e.message, details=details)
        raise
    folder = args.output.parent if args.output else Path.cwd()
    for name, text in out.seccomp_files:
        write_atomic(folder / name, text, mode=0o644)
        status(f"seccomp profile: {folder / name} (copy to /var/lib/kubelet/seccomp/ on "
               "each node)")
    text = out.yaml()
    if args.output:
        write_atomic(args.output, text, mode=0o644)
        status(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    for note in out.notes:
        status(f"note: {note}")
    audit.record("kube.generate", "ok", details=details)
    return 0


def _play(args: argparse.Namespace) -> int:
    from secpod.cli._output import status
    from secpod.kube import play

    for pod in play.play(args.file, replace=args.replace, progress=status):
        print(pod.id)
    return 0


def _down(args: argparse.Namespace) -> int:
    from secpod.cli._output import status
    from secpod.kube import play

    gone = play.down(args.file)
    for name in gone:
        print(name)
    if not gone:
        status("no pod of this file exists")
    return 0


def _add_kube(sub: _Subparsers) -> None:
    from pathlib import Path

    p = sub.add_parser("kube", help="Kubernetes Pods from containers, and pods from "
                                    "Kubernetes YAML")
    kinds = p.add_subparsers(dest="kind", metavar="COMMAND")
    kinds.required = True
    g = kinds.add_parser(
        "generate", help="a Pod (or Deployment) holding containers, with their confinement",
        description="Write a v1 Pod (or apps/v1 Deployment) holding CONTAINER...: each "
        "container's securityContext carries the confinement it ran under; its seccomp "
        "filter is written beside the YAML (docs/kubernetes.md).")
    g.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write the YAML to FILE (atomically) instead of stdout")
    g.add_argument("--type", default="pod", choices=["pod", "deployment"])
    g.add_argument("containers", nargs="+", metavar="CONTAINER")
    g.set_defaults(func=_generate)
    q = kinds.add_parser(
        "play", help="run the Pods and Deployments of a YAML file as pods",
        description="Run each Pod (a Deployment: its pod template, once) of FILE as a secpod "
        "pod, each container under a profile no weaker than its securityContext asks and "
        "the floor allows; fields secpod does not support are refused by their path "
        "(docs/kubernetes.md). Prints each pod's id.")
    from secpod.cli._flags import bool_flag

    bool_flag(q, "--replace", dest="replace",
              help="remove the file's pods first, if they exist")
    q.add_argument("file", type=Path, metavar="FILE")
    q.set_defaults(func=_play)
    q = kinds.add_parser("down", help="remove the pods a YAML file made (kube play)")
    q.add_argument("file", type=Path, metavar="FILE")
    q.set_defaults(func=_down)


PARSERS = {"kube": _add_kube}
