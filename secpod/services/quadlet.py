"""Quadlet files: Podman's ``.container``, ``.volume``, ``.pod`` and ``.kube`` units, run
by secpod.

``secpod-user-generator`` (a systemd user generator, and a console script) reads
``$XDG_CONFIG_HOME/containers/systemd/`` (``~/.config/containers/systemd/``), then
``/etc/containers/systemd/users/$UID/`` and ``/etc/containers/systemd/users/`` (the
administrator's, for every user); a file name found in an earlier folder hides the same
name in a later one. Each ``NAME.container`` becomes ``NAME.service``, which creates the
container at start (``secpod run -d --rm --name ... --sdnotify conmon``) and removes it at
stop, as ``secpod generate systemd --new`` does; each ``NAME.volume`` becomes
``NAME-volume.service``, which makes the volume's folder; each ``NAME.pod`` becomes
``NAME-pod.service``, which makes the pod (``secpod pod create``) and removes it, and a
``.container`` with ``Pod=NAME.pod`` joins it, its unit bound to the pod's; each
``NAME.kube`` becomes ``NAME.service``, running ``secpod kube play`` and ``kube down``.
``--dryrun`` prints the units instead of writing them.

Keys are Podman's for what secpod supports; a key secpod does not know, or knows and
cannot honour yet (``PublishPort=`` of a container, ``Network=``, ``Notify=true``, ...), is an
error naming the file, the line and the key, and that file makes no unit. The
``[X-Secpod]`` (or ``[Secpod]``) group takes ``Profile=`` and ``Runtime=``. ``[Unit]``,
``[Service]`` and ``[Install]`` go through to the unit as Quadlet passes them;
``WantedBy=``/``RequiredBy=`` become the generator's ``.wants``/``.requires`` links.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from secpod import paths
from secpod._record import field, record
from secpod.errors import Error

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Sequence

#: [Container] keys: key -> the run flag it becomes ("" when handled by hand)
CONTAINER_KEYS = {
    "Image": "", "Exec": "", "ContainerName": "--name", "Entrypoint": "--entrypoint",
    "Pod": "",
    "Environment": "", "EnvironmentFile": "--env-file", "User": "", "Group": "",
    "WorkingDir": "--workdir", "Volume": "", "Tmpfs": "--tmpfs", "Mount": "--mount",
    "ReadOnly": "", "AddCapability": "", "DropCapability": "", "NoNewPrivileges": "",
    "SecurityLabelDisable": "", "SeccompProfile": "", "HostName": "--hostname",
    "Notify": "", "RunInit": "", "PidsLimit": "--pids-limit", "Memory": "--memory",
    "StopTimeout": "", "LogDriver": "--log-driver", "AppArmor": "",
    "HealthCmd": "--health-cmd", "HealthInterval": "--health-interval",
    "HealthTimeout": "--health-timeout", "HealthRetries": "--health-retries",
    "HealthStartPeriod": "--health-start-period", "HealthOnFailure": "--health-on-failure",
}
#: keys of Podman's [Container] secpod knows and does not honour yet: why
NOT_YET = {
    "PublishPort": "published ports of a .container (publish them at a .pod: [Pod] "
                   "PublishPort=, and join it with Pod=)",
    "ExposeHostPort": "exposed ports are not kept by secpod",
    "Network": "networks come with the networking work",
    "DNS": "DNS settings come with the networking work",
    "IP": "addresses come with the networking work",
    "IP6": "addresses come with the networking work",
    "Label": "container labels come with the Docker CLI work",
    "Annotation": "annotations are not kept by secpod",
    "Ulimit": "--ulimit comes with the Docker CLI work",
    "PodmanArgs": "secpod takes no raw Podman arguments: use the keys, or [X-Secpod]",
    "AutoUpdate": "secpod has no auto-update",
    "Secret": "secrets are not supported yet",
    "UserNS": "secpod makes the user namespace itself",
}
SECPOD_KEYS = ("Profile", "Runtime")
VOLUME_KEYS = ("VolumeName",)
#: [Pod] keys: key -> the ``pod create`` flag it becomes
POD_KEYS = {"PodName": "--name", "PublishPort": "-p", "HostName": "--hostname",
            "Label": "--label"}
#: keys of Podman's [Pod] secpod knows and does not honour: why
POD_NOT_YET = {
    **{k: "a pod's network is secpod's private one (docs/pods.md)"
       for k in ("Network", "NetworkAlias", "DNS", "DNSOption", "DNSSearch", "IP", "IP6",
                 "AddHost")},
    **{k: "secpod makes the user namespace itself"
       for k in ("UserNS", "UIDMap", "GIDMap", "SubUIDMap", "SubGIDMap")},
    "Volume": "a pod has no volumes of its own: give its members the same Volume=",
    "ShmSize": "a pod's IPC namespace takes no size",
    "PodmanArgs": "secpod takes no raw Podman arguments: use the keys, or [X-Secpod]",
    "GlobalArgs": "secpod takes no raw Podman arguments: use the keys, or [X-Secpod]",
    "ContainersConfModule": "secpod reads no containers.conf",
    "ExitPolicy": "a secpod pod lives until it is stopped (its infra's life)",
    "ServiceName": "the unit is named after the file: NAME.pod makes NAME-pod.service",
    "StopTimeout": "give the stop timeout to each member (StopTimeout= in [Container])",
}
POD_SECPOD_KEYS = ("Profile",)
#: [Kube] keys secpod knows and does not honour: why
KUBE_NOT_YET = {
    "ConfigMap": "give the ConfigMaps in the YAML file itself (kube play reads them there)",
    "PublishPort": "publish the ports in the YAML (hostPort), as kube play reads them",
    "Network": "a pod's network is secpod's private one (docs/pods.md)",
    "UserNS": "secpod makes the user namespace itself",
    "AutoUpdate": "secpod has no auto-update",
    "LogDriver": "kube play keeps each container's log as run does (docs/services.md)",
    "PodmanArgs": "secpod takes no raw Podman arguments",
    "GlobalArgs": "secpod takes no raw Podman arguments",
    "ContainersConfModule": "secpod reads no containers.conf",
    "ExitCodePropagation": "secpod runs no service container: systemd sees kube play's "
                           "exit, not the containers'",
    "KubeDownForce": "kube down always removes the volumes kube play made",
    "SetWorkingDirectory": "give Yaml= as an absolute path or one beside the .kube file",
}
VOLUME_NOT_YET = {k: "volume drivers and options are not supported: a volume is a folder "
                  "secpod makes" for k in ("Driver", "Device", "Type", "Options", "Copy",
                                             "Image", "Label", "User", "Group")}
PASSED = ("Unit", "Service", "Install")
SUFFIXES = (".container", ".volume", ".pod", ".kube")


@record(frozen=True)
class Entry:
    section: str
    key: str
    value: str
    line: int


@record(frozen=True)
class Source:
    path: Path
    entries: tuple[Entry, ...] = ()


@record(frozen=True)
class Unit:
    name: str
    text: str
    source: Path
    wanted_by: tuple[str, ...] = ()
    required_by: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)


class QuadletError(Error):
    """A Quadlet file secpod cannot turn into a unit (file, line and key named)."""


def parse(path: Path, text: str) -> Source:
    """The entries of a unit-format file (sections, ``#``/``;`` comments, ``\\``
    continuations). Raises QuadletError for a line that is none of those."""
    entries: list[Entry] = []
    section = ""
    pending = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip() if not pending else raw.rstrip()
        if not pending:
            start = n
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise QuadletError(f"{path}:{n}: a section header must end with ']'")
                section = line[1:-1]
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise QuadletError(f"{path}:{start}: not KEY=VALUE: {line.strip()[:60]!r}")
        if not section:
            raise QuadletError(f"{path}:{start}: {key.strip()}= is outside any section")
        entries.append(Entry(section, key.strip(), value.strip(), start))
    if pending:
        raise QuadletError(f"{path}: ends inside a continued line")
    return Source(path, tuple(entries))


def _words(value: str, where: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as e:
        raise QuadletError(f"{where}: cannot split the words: {e}") from e


def _bool(value: str, where: str) -> bool:
    low = value.lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise QuadletError(f"{where}: {value!r} is not a boolean", hint="use true or false")


def quote_keeping_specifiers(word: str) -> str:
    """As units.quote, but ``%`` stays: the file's own specifiers (``%h``) are systemd's
    to expand, as Quadlet leaves them."""
    from secpod.services.units import quote

    return quote(word).replace("%%", "%")


def volume_dir(name: str) -> Path:
    """The folder a Quadlet volume is: ``$XDG_DATA_HOME/secpod/volumes/NAME``."""
    return paths.data_dir() / "volumes" / name


_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def container_unit(src: Source, secpod: Sequence[str], volumes: dict[str, str],
                   pods: dict[str, str] | None = None) -> Unit:
    """The ``.service`` of a ``.container`` file. ``volumes``: the ``.volume`` files
    known (file name -> volume name); ``pods``: the ``.pod`` files (file name -> pod
    name). Raises QuadletError naming file, line and key."""
    pods = pods or {}
    stem = src.path.stem
    name = f"systemd-{stem}"
    run: list[str] = []
    image = ""
    command: list[str] | None = None
    user = group = None
    stop_timeout = 10
    requires: list[str] = []
    bound: list[str] = []
    hostname_at = ""
    passed: dict[str, list[tuple[str, str]]] = {s: [] for s in PASSED}
    sdnotify = "conmon"
    for e in src.entries:
        where = f"{src.path}:{e.line}: {e.key}"
        if e.section in PASSED:
            passed[e.section].append((e.key, e.value))
            continue
        if e.section in ("X-Secpod", "Secpod"):
            if e.key not in SECPOD_KEYS:
                raise QuadletError(f"{where}: unknown key in [{e.section}]",
                                   hint="[X-Secpod] takes " + ", ".join(SECPOD_KEYS))
            run += [f"--{e.key.lower()}", e.value]
            continue
        if e.section != "Container":
            raise QuadletError(f"{src.path}:{e.line}: unknown section [{e.section}]",
                               hint="a .container file has [Container], [X-Secpod], "
                                    "[Unit], [Service] and [Install]")
        if e.key in NOT_YET:
            raise QuadletError(f"{where}: not supported yet: {NOT_YET[e.key]}",
                               hint="remove the key; secpod refuses what it cannot honour")
        if e.key not in CONTAINER_KEYS:
            raise QuadletError(f"{where}: unknown key in [Container]",
                               hint="docs/services.md lists the keys secpod takes")
        v = e.value
        flag = CONTAINER_KEYS[e.key]
        if e.key == "Image":
            image = v
        elif e.key == "Exec":
            command = _words(v, where)
        elif e.key == "Environment":
            for item in _words(v, where):
                if "=" not in item:
                    raise QuadletError(f"{where}: {item!r} is not KEY=VALUE")
                run += ["-e", item]
        elif e.key == "User":
            user = v
        elif e.key == "Group":
            group = v
        elif e.key == "Volume":
            src_part, sep, rest = v.partition(":")
            if not sep:
                raise QuadletError(f"{where}: use SOURCE:DESTINATION[:ro]")
            if src_part.endswith(".volume"):
                if src_part not in volumes:
                    raise QuadletError(f"{where}: there is no {src_part} beside it")
                requires.append(src_part.removesuffix(".volume") + "-volume.service")
                src_part = str(volume_dir(volumes[src_part]))
            elif not src_part.startswith(("/", "%")):
                raise QuadletError(f"{where}: named volumes are not supported",
                                   hint="give a host path, or a NAME.volume file beside it")
            run += ["-v", f"{src_part}:{rest}"]
        elif e.key in ("ReadOnly", "NoNewPrivileges", "SecurityLabelDisable"):
            on = _bool(v, where)
            if e.key == "ReadOnly":
                run.append(f"--read-only={'true' if on else 'false'}")
            elif e.key == "NoNewPrivileges":
                run += ["--security-opt", f"no-new-privileges={'true' if on else 'false'}"]
            elif on:
                run += ["--security-opt", "label=disable"]
        elif e.key in ("AddCapability", "DropCapability"):
            for cap in _words(v, where):
                run += ["--cap-add" if e.key == "AddCapability" else "--cap-drop", cap]
        elif e.key == "SeccompProfile":
            run += ["--security-opt", f"seccomp={v}"]
        elif e.key == "AppArmor":
            run += ["--security-opt", f"apparmor={v}"]
        elif e.key == "Notify":
            if _bool(v, where):
                raise QuadletError(f"{where}: not supported yet: the container would need "
                                   "systemd's notify socket (--sdnotify container)",
                                   hint="leave Notify= out: READY=1 comes once the "
                                        "container runs")
        elif e.key == "RunInit":
            if _bool(v, where):
                raise QuadletError(f"{where}: not supported yet: --init comes with the "
                                   "Docker CLI work")
        elif e.key == "StopTimeout":
            if not v.isdigit():
                raise QuadletError(f"{where}: give whole seconds")
            stop_timeout = int(v)
        elif e.key == "ContainerName":
            name = v
        elif e.key == "Pod":
            if not v.endswith(".pod"):
                raise QuadletError(f"{where}: give a NAME.pod file beside it",
                                   hint="a .container joins the pod a .pod file makes")
            if v not in pods:
                raise QuadletError(f"{where}: there is no {v} beside it")
            if bound:
                raise QuadletError(f"{where}: a container joins one pod")
            bound.append(v.removesuffix(".pod") + "-pod.service")
            run += ["--pod", pods[v]]
        else:
            if e.key == "HostName":
                hostname_at = where
            run += [flag, v]
    if not image:
        raise QuadletError(f"{src.path}: no Image= in [Container]",
                           hint="Image=docker.io/library/busybox:latest, as secpod image ls "
                                "names it")
    if bound and hostname_at:
        raise QuadletError(f"{hostname_at}: a member of a pod has the pod's hostname",
                           hint="set HostName= in the .pod file")
    if user is not None or group is not None:
        run += ["--user", (user or "0") + (f":{group}" if group else "")]
    words = ["run", "-d", "--rm", "--name", name, "--sdnotify", sdnotify, *run, image,
             *(command or [])]
    q = quote_keeping_specifiers
    unit_items = [("Description", f"secpod container {name}"),
                  ("SourcePath", str(src.path))]
    for req in requires:
        unit_items += [("Requires", req), ("After", req)]
    for pod_unit in bound:   # started once the pod runs, stopped with it
        unit_items += [("BindsTo", pod_unit), ("After", pod_unit)]
    unit_items += passed["Unit"]
    service = [
        ("ExecStartPre", "-" + " ".join(q(w) for w in [*secpod, "rm", "-f", name])),
        ("ExecStart", " ".join(q(w) for w in [*secpod, *words])),
        ("ExecStop", "-" + " ".join(q(w) for w in [*secpod, "stop", "-t", str(stop_timeout),
                                                 name])),
        ("ExecStopPost", "-" + " ".join(q(w) for w in [*secpod, "rm", "-f", name])),
        ("Type", "notify"), ("NotifyAccess", "all"), ("SyslogIdentifier", "%N"),
        ("TimeoutStopSec", str(stop_timeout + 60)),
        *passed["Service"],
    ]
    return _unit(f"{stem}.service", src, [("Unit", unit_items), ("Service", service)],
                 passed["Install"])


def volume_unit(src: Source, volume: str) -> Unit:
    """The ``NAME-volume.service`` of a ``.volume`` file: a oneshot making its folder."""
    passed: dict[str, list[tuple[str, str]]] = {s: [] for s in PASSED}
    for e in src.entries:
        where = f"{src.path}:{e.line}: {e.key}"
        if e.section in PASSED:
            passed[e.section].append((e.key, e.value))
        elif e.section != "Volume":
            raise QuadletError(f"{src.path}:{e.line}: unknown section [{e.section}]",
                               hint="a .volume file has [Volume], [Unit], [Service], "
                                    "[Install]")
        elif e.key in VOLUME_NOT_YET:
            raise QuadletError(f"{where}: not supported yet: {VOLUME_NOT_YET[e.key]}")
        elif e.key not in VOLUME_KEYS:
            raise QuadletError(f"{where}: unknown key in [Volume]",
                               hint="[Volume] takes VolumeName=")
    folder = volume_dir(volume)
    service = [("Type", "oneshot"), ("RemainAfterExit", "yes"),
               ("ExecStart", f"/bin/mkdir -p -m 0700 {quote_keeping_specifiers(str(folder))}"),
               ("SyslogIdentifier", "%N"), *passed["Service"]]
    unit = [("Description", f"secpod volume {volume}"), ("SourcePath", str(src.path)),
            *passed["Unit"]]
    return _unit(f"{src.path.stem}-volume.service", src, [("Unit", unit), ("Service", service)],
                 passed["Install"])


def pod_unit(src: Source, secpod: Sequence[str], pod: str,
             members: Sequence[str] = ()) -> Unit:
    """The ``NAME-pod.service`` of a ``.pod`` file: ``secpod pod create`` at start (ready
    once the infra runs, which is the unit's main process), ``pod stop`` and ``pod rm``
    at stop, as ``generate systemd --new POD`` writes it; it ``Wants=`` each member's
    unit (``members``: the units of the ``.container`` files with ``Pod=`` this file) and
    starts ``Before=`` them. Raises QuadletError naming file, line and key."""
    passed: dict[str, list[tuple[str, str]]] = {s: [] for s in PASSED}
    create: list[str] = []
    for e in src.entries:
        where = f"{src.path}:{e.line}: {e.key}"
        if e.section in PASSED:
            passed[e.section].append((e.key, e.value))
        elif e.section in ("X-Secpod", "Secpod"):
            if e.key not in POD_SECPOD_KEYS:
                raise QuadletError(f"{where}: unknown key in [{e.section}]",
                                   hint="[X-Secpod] of a .pod takes Profile= (the floor of "
                                        "its members' profiles)")
            create += ["--profile", e.value]
        elif e.section != "Pod":
            raise QuadletError(f"{src.path}:{e.line}: unknown section [{e.section}]",
                               hint="a .pod file has [Pod], [X-Secpod], [Unit], [Service] "
                                    "and [Install]")
        elif e.key in POD_NOT_YET:
            raise QuadletError(f"{where}: not supported: {POD_NOT_YET[e.key]}",
                               hint="remove the key; secpod refuses what it cannot honour")
        elif e.key not in POD_KEYS:
            raise QuadletError(f"{where}: unknown key in [Pod]",
                               hint="[Pod] takes " + ", ".join(POD_KEYS))
        elif e.key == "Label":
            for item in _words(e.value, where):
                create += ["--label", item]
        elif e.key != "PodName":
            create += [POD_KEYS[e.key], e.value]
    q = quote_keeping_specifiers

    def line(words: Sequence[str]) -> str:
        return " ".join(q(w) for w in [*secpod, *words])

    unit_items = [("Description", f"secpod pod {pod}"), ("SourcePath", str(src.path))]
    for m in members:
        unit_items += [("Wants", m), ("Before", m)]
    service = [
        ("ExecStartPre", "-" + line(["pod", "rm", "-f", pod])),
        ("ExecStart", line(["pod", "create", "--name", pod, *create])),
        ("ExecStop", "-" + line(["pod", "stop", pod])),
        ("ExecStopPost", "-" + line(["pod", "rm", "-f", pod])),
        ("Type", "notify"), ("NotifyAccess", "all"), ("SyslogIdentifier", "%N"),
        *passed["Service"],
    ]
    return _unit(f"{src.path.stem}-pod.service", src,
                 [("Unit", [*unit_items, *passed["Unit"]]), ("Service", service)],
                 passed["Install"])


def kube_unit(src: Source, secpod: Sequence[str]) -> Unit:
    """The ``NAME.service`` of a ``.kube`` file: ``secpod kube play --replace YAML`` at
    start, ``kube down YAML`` at stop. A oneshot that stays active: kube play makes the
    pods and returns (secpod runs no service container), so systemd sees kube play's
    exit, not the pods' lives. ``Yaml=`` relative to the file's folder. Raises
    QuadletError naming file, line and key."""
    passed: dict[str, list[tuple[str, str]]] = {s: [] for s in PASSED}
    yaml = ""
    for e in src.entries:
        where = f"{src.path}:{e.line}: {e.key}"
        if e.section in PASSED:
            passed[e.section].append((e.key, e.value))
        elif e.section != "Kube":
            raise QuadletError(f"{src.path}:{e.line}: unknown section [{e.section}]",
                               hint="a .kube file has [Kube], [Unit], [Service] and "
                                    "[Install]")
        elif e.key in KUBE_NOT_YET:
            raise QuadletError(f"{where}: not supported: {KUBE_NOT_YET[e.key]}",
                               hint="remove the key; secpod refuses what it cannot honour")
        elif e.key != "Yaml":
            raise QuadletError(f"{where}: unknown key in [Kube]", hint="[Kube] takes Yaml=")
        elif yaml:
            raise QuadletError(f"{where}: one Yaml= per .kube file",
                               hint="put the documents in one file, or write a .kube "
                                    "file for each")
        elif not e.value:
            raise QuadletError(f"{where}: give the YAML file's path")
        else:
            yaml = e.value if e.value.startswith(("/", "%")) else \
                str(src.path.parent / e.value)
    if not yaml:
        raise QuadletError(f"{src.path}: no Yaml= in [Kube]",
                           hint="Yaml=web.yaml, beside the .kube file or absolute")
    q = quote_keeping_specifiers

    def line(words: Sequence[str]) -> str:
        return " ".join(q(w) for w in [*secpod, *words])

    service = [
        ("Type", "oneshot"), ("RemainAfterExit", "yes"),
        ("ExecStart", line(["kube", "play", "--replace", yaml])),
        ("ExecStop", line(["kube", "down", yaml])),
        ("SyslogIdentifier", "%N"), *passed["Service"],
    ]
    unit = [("Description", f"secpod kube play {yaml}"), ("SourcePath", str(src.path)),
            *passed["Unit"]]
    return _unit(f"{src.path.stem}.service", src, [("Unit", unit), ("Service", service)],
                 passed["Install"])


def _unit(name: str, src: Source, sections: list[tuple[str, list[tuple[str, str]]]],
          install: list[tuple[str, str]]) -> Unit:
    from secpod.services.units import render

    wanted, required = [], []
    for key, value in install:
        if key == "WantedBy":
            wanted += value.split()
        elif key == "RequiredBy":
            required += value.split()
        else:
            raise QuadletError(f"{src.path}: [Install] {key}= is not supported",
                               hint="a generated unit is enabled by WantedBy= or RequiredBy=")
    text = render(name, sections, origin=f"made by secpod-user-generator from {src.path}")
    return Unit(name, text, src.path, tuple(wanted), tuple(required))


def search_dirs() -> list[Path]:
    """Where a user's Quadlet files are, first wins."""
    return [paths.config_dir().parent / "containers" / "systemd",
            Path(f"/etc/containers/systemd/users/{os.getuid()}"),
            Path("/etc/containers/systemd/users")]


def collect(dirs: Sequence[Path]) -> list[Path]:
    """The .container, .volume, .pod and .kube files of ``dirs``; a name seen first hides
    later ones."""
    seen: dict[str, Path] = {}
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for n in names:
            if n.endswith(SUFFIXES) and n not in seen:
                seen[n] = d / n
    return [seen[n] for n in sorted(seen)]


def generate(files: Sequence[Path], secpod: Sequence[str]) -> tuple[list[Unit], list[str]]:
    """(units, problems): every file that makes a unit, and one message per file that
    does not (file, line and key)."""
    from secpod._files import read_limited
    from secpod.pods.record import valid_name

    sources: dict[Path, Source] = {}
    problems: list[str] = []
    for f in files:
        try:
            sources[f] = parse(f, read_limited(f, 1 << 20).decode())
        except QuadletError as e:
            problems.append(e.message)
        except (OSError, UnicodeDecodeError, Error) as e:
            problems.append(f"{f}: cannot read: {e}")
    volumes: dict[str, str] = {}
    units: list[Unit] = []
    for f, src in sources.items():
        if f.suffix != ".volume":
            continue
        volume = next((e.value for e in src.entries
                       if e.section == "Volume" and e.key == "VolumeName"), f"systemd-{f.stem}")
        if not _VOLUME_NAME.match(volume):
            problems.append(f"{f}: VolumeName {volume!r} is not a folder name")
            continue
        try:
            units.append(volume_unit(src, volume))
            volumes[f.name] = volume
        except QuadletError as e:
            problems.append(e.message)
    pods: dict[str, str] = {}
    for f, src in sources.items():
        if f.suffix != ".pod":
            continue
        pod = next((e.value for e in src.entries
                    if e.section == "Pod" and e.key == "PodName"), f"systemd-{f.stem}")
        if not valid_name(pod):
            problems.append(f"{f}: PodName {pod!r} is not a pod name (letters, digits, "
                            "'_', '.' and '-', starting alphanumeric)")
            continue
        try:
            pod_unit(src, secpod, pod)   # its own keys, before any member counts on it
            pods[f.name] = pod
        except QuadletError as e:
            problems.append(e.message + (f" (hint: {e.hint})" if e.hint else ""))
    members: dict[str, list[str]] = {name: [] for name in pods}
    for f, src in sources.items():
        try:
            if f.suffix == ".container":
                unit = container_unit(src, secpod, volumes, pods)
                units.append(unit)
                joined = next((e.value for e in src.entries
                               if e.section == "Container" and e.key == "Pod"), None)
                if joined is not None:
                    members[joined].append(unit.name)
            elif f.suffix == ".kube":
                units.append(kube_unit(src, secpod))
        except QuadletError as e:
            problems.append(e.message + (f" (hint: {e.hint})" if e.hint else ""))
    for f, src in sources.items():
        if f.name in pods:
            units.append(pod_unit(src, secpod, pods[f.name], members[f.name]))
    return units, problems


def write(units: Sequence[Unit], folder: Path) -> None:
    """Into a generator's output folder: each unit, and its .wants/.requires links."""
    from secpod._files import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    for u in units:
        write_atomic(folder / u.name, u.text)
        for target, kind in [*((t, "wants") for t in u.wanted_by),
                             *((t, "requires") for t in u.required_by)]:
            links = folder / f"{target}.{kind}"
            links.mkdir(exist_ok=True)
            link = links / u.name
            if not link.is_symlink():
                link.symlink_to(Path("..") / u.name)


def main(argv: Sequence[str] | None = None) -> int:
    """``secpod-user-generator [--dryrun] [NORMAL_DIR [EARLY_DIR LATE_DIR]]``: as systemd
    calls a generator, or by hand with --dryrun to print the units."""
    import argparse

    from secpod.services.units import secpod_argv0

    p = argparse.ArgumentParser(prog="secpod-user-generator",
                                description="Quadlet .container, .volume, .pod and "
                                ".kube files into "
                                "systemd user units (docs/services.md)")
    p.add_argument("--dryrun", action="store_true", help="print the units, write nothing")
    p.add_argument("dirs", nargs="*", metavar="DIR",
                   help="systemd's normal, early and late generator folders")
    args = p.parse_args(argv)
    if not args.dryrun and not args.dirs:
        p.error("give the output folder (systemd does), or --dryrun")
    units, problems = generate(collect(search_dirs()), secpod_argv0())
    for message in problems:
        print(f"secpod-user-generator: {message}", file=sys.stderr)
    if args.dryrun:
        for u in units:
            sys.stdout.write(f"---{u.name}---\n{u.text}")
            for t in u.wanted_by:
                sys.stdout.write(f"(enabled: {t}.wants/{u.name})\n")
    else:
        write(units, Path(args.dirs[0]))
    return 1 if problems else 0


def entry() -> None:
    sys.exit(main())
