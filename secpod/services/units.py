"""systemd units for containers and pods: ``secpod generate systemd [--new] CONTAINER|POD``.

A unit made ``--new`` creates the container when it starts and removes it when it stops,
with the words that created it first (kept on the container record as
``create_command``), rewritten as Podman rewrites them: ``run -d --rm --name NAME
--sdnotify conmon``, without ``--restart`` (systemd's ``Restart=`` does that). Without
``--new`` it starts and stops the existing container. Either way it is ``Type=notify``
with ``NotifyAccess=all``: secpod, once the container runs, tells systemd ``READY=1`` and
``MAINPID`` (the monitor, conmon; sandbox/sdnotify.py); ``ExecStop`` is ``secpod stop``.

Everything written passes ``systemd-analyze verify`` without a warning (tests check it):
no key systemd does not know, words quoted as systemd splits them, ``%`` and ``$``
escaped.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from secpod import __version__, paths
from secpod.errors import Conflict, Error, UsageError

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Sequence

    from secpod.pods.record import Pod
    from secpod.sandbox.state import Container

    Section = tuple[str, list[tuple[str, str]]]

#: systemd's Restart= values
SYSTEMD_RESTART = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog",
                   "on-abort", "always")
DEFAULT_STOP_TIMEOUT = 10
_SAFE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
#: the run flags a --new unit sets itself (dropped from the command that created it)
_DROPPED = ("-d", "--detach", "--restart", "--rm", "--name", "--sdnotify")


def quote(word: str) -> str:
    """One word of an ``Exec*=`` line as systemd splits it back (systemd.service(5),
    "Command lines"): C-style escapes in double quotes, ``%%`` for ``%``, ``$$`` for
    ``$``."""
    if _SAFE.fullmatch(word):
        return word
    out = word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    out = out.replace("\t", "\\t").replace("%", "%%").replace("$", "$$")
    return f'"{out}"'


def command_line(words: Sequence[str]) -> str:
    return " ".join(quote(w) for w in words)


def environment_value(key: str, value: str) -> str:
    """An ``Environment=`` assignment (no ``$`` expansion there; specifiers are)."""
    text = f"{key}={value}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text}"'


def render(name: str, sections: Sequence[Section], *, origin: str) -> str:
    """A unit file: a comment saying where it came from, then each section."""
    lines = [f"# {name}", f"# {origin} (secpod {__version__})"]
    for title, items in sections:
        lines += ["", f"[{title}]"]
        lines += [f"{k}={v}" for k, v in items]
    return "\n".join(lines) + "\n"


def secpod_argv0() -> list[str]:
    """How a unit runs secpod: the ``secpod`` script beside this interpreter (what pip
    installed), else the one on PATH, else ``python -m secpod``; always absolute."""
    beside = Path(sys.executable).parent / "secpod"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("secpod")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "secpod"]


def _environment() -> list[tuple[str, str]]:
    """The XDG folders this secpod uses, where set: the unit's secpod must find the same
    store and configuration (systemd --user does not pass your shell's variables)."""
    out = []
    for key in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        value = os.environ.get(key)
        if value:
            out.append(("Environment", environment_value(key, value)))
    return out


def _run_parser() -> object:
    import argparse

    from secpod.cli._flags import bool_flag
    from secpod.spec.flags import add_run_flags

    p = argparse.ArgumentParser(prog="secpod run", add_help=False, exit_on_error=False)
    bool_flag(p, "-d", "--detach", dest="detach", help="")
    add_run_flags(p)
    return p


def rewrite_for_unit(words: Sequence[str], name: str, pod: str | None = None) -> list[str]:
    """``run|create FLAGS IMAGE CMD`` as a --new unit runs it: ``run -d --rm --name NAME
    --sdnotify conmon FLAGS IMAGE CMD`` (FLAGS without those it sets; with ``pod``, its
    ``--pod`` names the pod, whose --new unit makes it anew with a new id). Raises Error
    when the words cannot be read back (a record from an older secpod has none)."""
    import argparse

    if words[:2] == ["kube", "play"]:
        raise Error("the container was made by secpod kube play: its command is the "
                    "YAML's, not a run", hint="run the YAML as a service with a .kube "
                    "Quadlet file (docs/services.md); or generate a unit without --new")
    if not words or words[0] not in ("run", "create"):
        raise Error("the container's record does not say how it was created",
                    hint="a container made by an older secpod: re-create it, then generate "
                         "the unit; or generate one without --new")
    p = _run_parser()
    assert isinstance(p, argparse.ArgumentParser)
    rest = list(words[1:])
    try:
        ns = p.parse_args(rest)
    except (argparse.ArgumentError, SystemExit) as e:
        raise Error(f"the command that created the container cannot be read back: {e}") from e
    tail_len = len(ns.command) + 1
    opts, tail = rest[:len(rest) - tail_len], rest[len(rest) - tail_len:]
    if not tail or tail[0] != ns.image:
        raise Error("the command that created the container cannot be read back "
                    f"(its image {ns.image!r} is not where it should be)")
    takes_value = {s for a in p._actions for s in a.option_strings if a.nargs != 0}
    kept: list[str] = []
    i = 0
    while i < len(opts):
        word = opts[i]
        span = 1
        if word.startswith("--"):
            key = word.partition("=")[0]
            if "=" not in word and key in takes_value:
                span = 2
        elif word.startswith("-") and len(word) > 2 and word[:2] not in takes_value:
            flags = word[1:].replace("d", "")  # a cluster of short flags: -dit is -it
            key, word = ("-d", "") if not flags else ("", "-" + flags)
        else:
            key = word[:2] if word.startswith("-") else word
            if word in takes_value:
                span = 2
        if key not in _DROPPED and word and not (pod is not None and key == "--pod"):
            kept += opts[i:i + span] if span == 2 else [word]
        i += span
    joined = ["--pod", pod] if pod is not None else []
    return ["run", "-d", "--rm", "--name", name, "--sdnotify", "conmon", *joined, *kept,
            *tail]


def rewrite_pod_create(words: Sequence[str], name: str) -> list[str]:
    """``secpod pod create FLAGS`` as a --new pod unit runs it: ``pod create --name NAME
    FLAGS`` (every flag of ``pod create`` takes a value). Raises Error when the pod was
    not made by ``pod create`` (``kube play`` makes pods too)."""
    rest = list(words[1:] if words[:1] == ["secpod"] else words)
    while rest[:1] in (["-v"], ["--verbose"]):
        rest = rest[1:]
    if rest[:2] == ["kube", "play"]:
        raise Error(f"pod {name} was made by secpod kube play, not by pod create",
                    hint="run the YAML as a service with a .kube Quadlet file "
                         "(docs/services.md); or generate the units without --new")
    if rest[:2] != ["pod", "create"]:
        raise Error(f"the record of pod {name} does not say how it was made",
                    hint="re-create the pod, or generate the units without --new")
    opts, kept, i = rest[2:], [], 0
    while i < len(opts):
        word = opts[i]
        if not word.startswith("-"):
            raise Error(f"the command that made pod {name} cannot be read back "
                        f"(at {word!r})", hint="generate the units without --new")
        key = word.partition("=")[0]
        span = 1 if "=" in word or (not word.startswith("--") and len(word) > 2) else 2
        if key != "--name":
            kept += opts[i:i + span]
        i += span
    return ["pod", "create", "--name", name, *kept]


def restart_for_unit(policy: str | None, ctr: Container) -> str:
    """``--restart-policy``, else the container's (always and unless-stopped are
    ``always``, on-failure[:N] ``on-failure``), else ``on-failure`` (Podman's default)."""
    if policy is not None:
        if policy not in SYSTEMD_RESTART:
            raise UsageError(f"invalid --restart-policy {policy!r}",
                             hint="one of systemd's: " + ", ".join(SYSTEMD_RESTART))
        return policy
    name = ctr.restart_policy.partition(":")[0]
    if name in ("always", "unless-stopped"):
        return "always"
    return "on-failure"


def unit_name(ctr: Container, *, use_name: bool, new: bool, prefix: str = "container",
              separator: str = "-") -> str:
    ident = ctr.name if (use_name or new) else ctr.id
    return f"{prefix}{separator}{ident}.service" if prefix else f"{ident}.service"


def container_unit(ctr: Container, *, new: bool, use_name: bool = False,
                   restart_policy: str | None = None, restart_sec: int | None = None,
                   stop_timeout: int = DEFAULT_STOP_TIMEOUT, prefix: str = "container",
                   separator: str = "-",
                   pod: tuple[str, str] | None = None) -> tuple[str, str]:
    """(unit name, unit text) for ``ctr``; ``pod``: (pod name, its unit's name) for a
    member, whose unit is bound to the pod's. Raises Error (no create command for
    --new), UsageError (a bad restart policy)."""
    name = unit_name(ctr, use_name=use_name, new=new, prefix=prefix, separator=separator)
    me = secpod_argv0()
    ident = ctr.name if (use_name or new) else ctr.id
    restart = restart_for_unit(restart_policy, ctr)
    service: list[tuple[str, str]] = [*_environment(), ("Restart", restart)]
    if restart_sec is not None:
        service.append(("RestartSec", str(restart_sec)))
    service.append(("TimeoutStopSec", str(stop_timeout + 60)))
    if new:
        run = rewrite_for_unit(ctr.create_command, ctr.name,
                               pod[0] if pod is not None else None)
        service += [
            # a container left by a unit that did not stop cleanly (a crash, a reboot)
            ("ExecStartPre", "-" + command_line([*me, "rm", "-f", ident])),
            ("ExecStart", command_line([*me, *run])),
            ("ExecStop", "-" + command_line([*me, "stop", "-t", str(stop_timeout), ident])),
            ("ExecStopPost", "-" + command_line([*me, "rm", "-f", ident])),
        ]
        origin = "made by secpod generate systemd --new"
    else:
        service += [
            ("ExecStart", command_line([*me, "start", ident])),
            ("ExecStop", "-" + command_line([*me, "stop", "-t", str(stop_timeout), ident])),
        ]
        origin = "made by secpod generate systemd"
    service += [("Type", "notify"), ("NotifyAccess", "all")]
    unit = [("Description", f"secpod container {ctr.name}")]
    if pod is not None:  # stopped with the pod, started once the pod runs
        unit += [("BindsTo", pod[1]), ("After", pod[1])]
    sections: list[Section] = [
        ("Unit", unit),
        ("Service", service),
        ("Install", [("WantedBy", "default.target")]),
    ]
    return name, render(name, sections, origin=origin)


def pod_units(pod: Pod, members: Sequence[Container], *, new: bool, use_name: bool = False,
              restart_policy: str | None = None, restart_sec: int | None = None,
              stop_timeout: int = DEFAULT_STOP_TIMEOUT, prefix: str = "container",
              pod_prefix: str = "pod", separator: str = "-") -> list[tuple[str, str]]:
    """The units of a pod, as Podman writes them: ``pod-NAME.service`` for the pod (its
    infra), which ``Wants=`` each member's unit and starts ``Before=`` it, then one unit
    per member, ``BindsTo=`` and ``After=`` the pod's. With ``new`` the pod's unit makes
    the pod (``pod create`` with the words that made it) and removes it; without, it
    starts the existing pod's infra (``pod start --infra-only``: each member's unit
    starts its member) and stops the pod. Raises Error (a pod or member without its
    create command, for --new), UsageError (a bad restart policy)."""
    name = f"{pod_prefix}{separator}{pod.name}.service"
    me = secpod_argv0()
    kids = [container_unit(m, new=new, use_name=use_name, restart_policy=restart_policy,
                           restart_sec=restart_sec, stop_timeout=stop_timeout, prefix=prefix,
                           separator=separator, pod=(pod.name, name)) for m in members]
    restart = restart_policy if restart_policy is not None else "on-failure"
    if restart not in SYSTEMD_RESTART:
        raise UsageError(f"invalid --restart-policy {restart!r}",
                         hint="one of systemd's: " + ", ".join(SYSTEMD_RESTART))
    service: list[tuple[str, str]] = [*_environment(), ("Restart", restart)]
    if restart_sec is not None:
        service.append(("RestartSec", str(restart_sec)))
    service.append(("TimeoutStopSec", str(stop_timeout + 60)))
    stop = [*me, "pod", "stop", "-t", str(stop_timeout), pod.name]
    if new:
        service += [
            ("ExecStartPre", "-" + command_line([*me, "pod", "rm", "-f", pod.name])),
            ("ExecStart", command_line([*me, *rewrite_pod_create(pod.create_command,
                                                                 pod.name)])),
            ("ExecStop", "-" + command_line(stop)),
            ("ExecStopPost", "-" + command_line([*me, "pod", "rm", "-f", pod.name])),
        ]
        origin = "made by secpod generate systemd --new"
    else:
        service += [
            ("ExecStart", command_line([*me, "pod", "start", "--infra-only", pod.name])),
            ("ExecStop", "-" + command_line(stop)),
        ]
        origin = "made by secpod generate systemd"
    service += [("Type", "notify"), ("NotifyAccess", "all")]
    unit = [("Description", f"secpod pod {pod.name}")]
    for kid, _text in kids:
        unit += [("Wants", kid), ("Before", kid)]
    sections: list[Section] = [
        ("Unit", unit), ("Service", service),
        ("Install", [("WantedBy", "default.target")]),
    ]
    return [(name, render(name, sections, origin=origin)), *kids]


RESTART_SERVICE = "secpod-restart.service"


def restart_service_unit() -> tuple[str, str]:
    """``secpod-restart.service``: at the start of the user's manager (boot, with
    ``loginctl enable-linger``) it starts the containers Docker's daemon starts when it
    starts (``start --all --by-policy``; Podman's podman-restart.service does the same for
    ``always``). It only starts them: it holds no container, so stopping it (or the host
    shutting down) stops none by hand, and ``unless-stopped`` ones come back next boot.
    Its conmons stay in its cgroup, hence ``KillMode=process``, and systemd waits for the
    starts with no timeout (many containers, a slow trust check)."""
    me = secpod_argv0()
    service: list[tuple[str, str]] = [
        *_environment(),
        ("Type", "oneshot"),
        ("RemainAfterExit", "yes"),
        ("ExecStart", command_line([*me, "start", "--all", "--by-policy"])),
        ("KillMode", "process"),
        ("TimeoutStartSec", "infinity"),
    ]
    sections: list[Section] = [
        ("Unit", [("Description", "secpod: start the containers whose restart policy is "
                                  "always, or unless-stopped")]),
        ("Service", service),
        ("Install", [("WantedBy", "default.target")]),
    ]
    return RESTART_SERVICE, render(RESTART_SERVICE, sections,
                                   origin="made by secpod generate systemd --restart-service")


def user_unit_dir() -> Path:
    """Where a user's own units live: ``$XDG_CONFIG_HOME/systemd/user``."""
    return paths.config_dir().parent / "systemd" / "user"


def write_units(units: Sequence[tuple[str, str]], folder: Path) -> list[Path]:
    """Write each unit into ``folder``; refuse (Conflict) before writing any when a file
    of that name is there already, or a unit of that name is installed for the user."""
    from secpod._files import write_atomic

    for name, _text in units:
        for place in (folder / name, user_unit_dir() / name):
            if place.exists():
                raise Conflict(f"the unit name {name} is in use: {place} exists",
                               hint="remove or rename it first, or choose another "
                                    "--container-prefix")
    written = []
    for name, text in units:
        write_atomic(folder / name, text)
        written.append(folder / name)
    return written
