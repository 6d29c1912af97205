"""The command line of ``run`` and ``create``, and the one parser of each flag's value.

:func:`add_run_flags` declares the flags; :func:`spec_from_args` turns what argparse
read into a :class:`~secpod.spec.ContainerSpec`. Each ``parse_*`` function owns one
flag's syntax and raises UsageError (exit 2, or 125 from ``run``) naming the flag and
the form it takes. Nothing after this module sees a flag's text.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from secpod.errors import UsageError
from secpod.spec import ContainerSpec, Health, Mount, Network, Process, Resources, Security

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from secpod.spec import PortMapping

RUNTIMES = ("crun", "runc")
NETWORKS = ("none", "private", "pasta", "host")   # and "loopback", an older name of private
_SECURITY_OPTS = ("seccomp", "no-new-privileges", "label", "apparmor")
_SECURITY_HINT = ("use seccomp=FILE, seccomp=unconfined, no-new-privileges[=true|false], "
                  "label=disable or apparmor=NAME")
MAX_ENV_FILE = 1 << 20


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``run`` and ``create`` share (Docker's spellings)."""
    from secpod.cli._flags import bool_flag

    # -h is --hostname, as in Docker; help is --help only.
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("-h", "--hostname", help="the container's host name (default: its short id)")
    p.add_argument("--pod", metavar="POD",
                   help="join a running pod: its network, IPC and hostname (docs/pods.md)")
    p.add_argument("--profile", default="default",
                   help="security profile (strict, default, or one of yours); default: default")
    p.add_argument("--name", help="a unique name for the container")
    p.add_argument("--runtime", choices=RUNTIMES,
                   help="the OCI runtime (default: secpod.toml's, else crun)")
    bool_flag(p, "--rm", dest="auto_remove", help="remove the container when it exits")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="set an environment variable (KEY alone takes it from your environment)")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="read KEY=VALUE lines from FILE (# comments; KEY alone as for -e)")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind-mount a host path, or mount a named volume (made if missing); "
                        "the profile and the administrator's floor may forbid either")
    p.add_argument("--mount", action="append", default=[],
                   metavar="type=bind|volume|tmpfs,...",
                   help="type=bind,source=SRC,target=DST[,readonly], "
                        "type=volume,source=NAME,target=DST[,readonly][,volume-nocopy] or "
                        "type=tmpfs,target=DST[,tmpfs-size=SIZE][,tmpfs-mode=MODE]")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTS]",
                   help="a tmpfs at DST; OPTS: size=SIZE, mode=MODE, ro, exec")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="UID[:GID] or NAME[:GROUP] from the image")
    bool_flag(p, "-i", "--interactive", dest="interactive", help="keep stdin attached")
    bool_flag(p, "-t", "--tty", dest="tty", help="give the container a terminal")
    p.add_argument("--entrypoint", help='replace the image\'s entrypoint ("" clears it)')
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=FILE|unconfined, no-new-privileges=false, label=disable, "
                        "apparmor=NAME")
    bool_flag(p, "--read-only", dest="read_only", default=None,
              help="read-only root filesystem (--read-only=false makes it writable)")
    p.add_argument("--network", metavar="MODE",
                   help="none (loopback only, nothing published), private (loopback only, "
                        "-p reachable; the default), pasta (outbound through pasta), host")
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:][HOST_PORT:]PORT[/PROTO]",
                   help="publish a container port on the host (default address 127.0.0.1)")
    bool_flag(p, "-P", "--publish-all", dest="publish_all",
              help="publish every port the image EXPOSEs on a free port of 127.0.0.1")
    p.add_argument("--dns", action="append", default=[], metavar="ADDRESS",
                   help="a name server for /etc/resolv.conf (--network pasta)")
    p.add_argument("--add-host", action="append", default=[], metavar="NAME:ADDRESS",
                   help="a line for the container's /etc/hosts")
    p.add_argument("--pids-limit", metavar="N", help="at most N processes (tighter than the "
                   "profile's; looser is a weakening)")
    p.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 256m")
    p.add_argument("--cpu-shares", metavar="N", help="relative CPU weight (2-262144)")
    add_docker_run_flags(p)
    add_service_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")


def add_service_flags(p: argparse.ArgumentParser) -> None:
    """Restart policy, log driver, sd_notify and health check (docs/services.md)."""
    from secpod.cli._flags import bool_flag

    p.add_argument("--restart", default="no", metavar="POLICY",
                   help="no, on-failure[:N], always or unless-stopped: run the container again "
                        "after it exits (Docker's backoff; secpod stop ends it)")
    p.add_argument("--log-driver", default="k8s-file", metavar="DRIVER",
                   help="k8s-file (the default), none, or journald (where it runs); "
                        "json-file is refused (conmon cannot write it)")
    p.add_argument("--log-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="max-size=SIZE (each log file), max-file=2 (secpod keeps the current "
                        "file and one rotated)")
    p.add_argument("--sdnotify", default="conmon", metavar="MODE",
                   help="under systemd (Type=notify, NOTIFY_SOCKET set): conmon, the default, "
                        "sends READY=1 and MAINPID (the monitor) once the container runs; "
                        "ignore sends nothing (container: not supported yet)")
    p.add_argument("--health-cmd", metavar="CMD",
                   help="a health check, run in the container as exec runs a command "
                        "(a shell command line; the image's Healthcheck otherwise)")
    p.add_argument("--health-interval", metavar="DURATION", help="between checks (30s)")
    p.add_argument("--health-timeout", metavar="DURATION",
                   help="a check taking longer fails (30s)")
    p.add_argument("--health-retries", metavar="N",
                   help="failures in a row that make it unhealthy (3)")
    p.add_argument("--health-start-period", metavar="DURATION",
                   help="failures in this time after the start do not count (0s)")
    p.add_argument("--health-on-failure", default="none", metavar="ACTION",
                   help="when it becomes unhealthy: none, kill, stop or restart")
    bool_flag(p, "--no-healthcheck", dest="no_healthcheck",
              help="no health check, not even the image's")


def spec_from_args(args: argparse.Namespace, *, detach: bool) -> ContainerSpec:
    """The spec of ``run``/``create`` as argparse read them; raises UsageError."""
    entry = None
    if args.entrypoint is not None:
        entry = tuple(args.entrypoint.split()) if args.entrypoint else ()
    if args.workdir is not None and not args.workdir.startswith("/"):
        raise UsageError(f"the working directory {args.workdir!r} is not absolute",
                         hint="use -w /PATH")
    mounts = parse_mounts(args.volume, args.mount, args.tmpfs)
    security = parse_security_opts(args.security_opt)
    return ContainerSpec(
        image=args.image,
        process=Process(
            command=tuple(args.command),
            entrypoint=entry,
            env=parse_env(args.env, args.env_file),
            workdir=args.workdir,
            user=args.user,
            interactive=args.interactive,
            tty=args.tty,
        ),
        name=args.name,
        hostname=None if args.hostname is None else check_hostname(args.hostname),
        pod=args.pod,
        profile=args.profile,
        runtime=args.runtime,
        detach=detach,
        auto_remove=args.auto_remove,
        mounts=tuple(mounts),
        security=Security(
            cap_add=parse_caps(args.cap_add, "--cap-add"),
            cap_drop=parse_caps(args.cap_drop, "--cap-drop"),
            seccomp=security.seccomp,
            no_new_privileges=security.no_new_privileges,
            label_disable=security.label_disable,
            apparmor=security.apparmor,
            read_only=args.read_only,
        ),
        network=parse_network(args.network),
        ports=parse_ports(args.publish),
        network_options=parse_network_options(args.publish_all, args.dns, args.add_host),
        resources=Resources(
            pids_limit=_positive(args.pids_limit, "--pids-limit"),
            memory=None if args.memory is None else parse_size(args.memory, "--memory"),
            cpu_shares=_cpu_shares(args.cpu_shares),
            **docker_resources(args),
        ),
        **docker_spec_fields(args, detach=detach),
        restart=parse_restart(args.restart, auto_remove=args.auto_remove),
        log_driver=parse_log_driver(args.log_driver),
        log_size_max=parse_log_opts(args.log_opt),
        sdnotify=parse_sdnotify(args.sdnotify),
        command_line=tuple(getattr(args, "command_line", ())),
        health=parse_health(args),
    )


# -- environment -----------------------------------------------------------------------

def parse_env(items: Iterable[str], files: Iterable[str] = (),
              environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """``--env-file`` lines first, then ``-e`` (a later KEY wins, as in Docker). ``KEY``
    alone takes the caller's value, and is left out when the caller has none."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for path in files:
        for where, item in _env_file_lines(path):
            _env_item(item, where, environ, out)
    for item in items:
        _env_item(item, "-e", environ, out)
    return tuple(out.items())


def _env_item(item: str, where: str, environ: Mapping[str, str], out: dict[str, str]) -> None:
    key, sep, value = item.partition("=")
    if not key or any(c.isspace() for c in key) or "\0" in item:
        raise UsageError(f"invalid environment variable {item!r} ({where})",
                         hint="use KEY=VALUE, or KEY alone to pass your own value")
    if sep:
        out[key] = value
    elif key in environ:
        out[key] = environ[key]


def _env_file_lines(path: str, flag: str = "--env-file") -> Iterable[tuple[str, str]]:
    from secpod._files import TooLarge, read_limited

    try:
        data = read_limited(Path(path), MAX_ENV_FILE)
    except TooLarge as e:
        raise UsageError(f"{flag} {path} is larger than {MAX_ENV_FILE} bytes") from e
    except OSError as e:
        raise UsageError(f"cannot read {flag} {path}: {e.strerror}",
                         hint="give a readable file of KEY=VALUE lines") from e
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise UsageError(f"{flag} {path} is not UTF-8 text") from e
    for n, line in enumerate(text.splitlines(), 1):
        line = line.lstrip()
        if line and not line.startswith("#"):
            yield f"{flag} {path}, line {n}", line


# -- mounts ----------------------------------------------------------------------------

def parse_mounts(volumes: Iterable[str], mounts: Iterable[str],
                 tmpfs: Iterable[str]) -> list[Mount]:
    """``-v``, ``--mount`` and ``--tmpfs``, in that order; raises MountRequestError."""
    from secpod.errors import MountRequestError

    try:
        out = [parse_volume(v) for v in volumes]
        out += [parse_mount(m) for m in mounts]
        out += [parse_tmpfs(t) for t in tmpfs]
        check_destinations(out)
    except UsageError as e:
        raise MountRequestError(e.message, hint=e.hint) from e
    return out


def parse_volume(text: str) -> Mount:
    """``-v SRC:DST[:OPTS]``: SRC an existing host path (bind) or a volume's name (made
    at create when missing, as Docker does); OPTS ``ro``, ``rw``, ``nocopy``, and the
    private propagations."""
    parts = text.split(":")
    if len(parts) == 1 and parts[0]:
        raise UsageError(f"invalid volume {text!r}: anonymous volumes are not supported",
                         hint="name it: -v NAME:/container/path (secpod volume ls)")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume {text!r}",
                         hint="use -v /host/path:/container/path[:ro] or -v NAME:/path[:ro]")
    src, dst = parts[0], check_destination(parts[1], text)
    named = "/" not in src and not src.startswith(("~", "."))
    ro = nocopy = False
    for opt in parts[2].split(",") if len(parts) == 3 else ():
        if opt in ("ro", "rw"):
            ro = opt == "ro"
        elif opt == "nocopy" and named:
            nocopy = True
        elif opt in ("private", "rprivate"):
            continue
        elif opt in ("shared", "rshared", "slave", "rslave"):
            raise UsageError(f"-v {text!r}: {opt} propagation is refused",
                             hint=_PROPAGATION_WHY)
        elif opt in ("z", "Z"):
            raise UsageError(f"invalid volume mode {opt!r} in {text!r}: secpod does not "
                             "relabel host files", hint="the container's SELinux label "
                             "comes from the profile; leave :z out")
        else:
            raise UsageError(f"invalid volume mode {opt!r} in {text!r}",
                             hint="use :ro or :rw" + (", and nocopy" if named else ""))
    if named:
        return Mount("volume", dst, volume_name(src), read_only=ro, nocopy=nocopy)
    return Mount("bind", dst, bind_source(src), read_only=ro)


_PROPAGATION_WHY = ("a shared or slave mount would let mounts cross between the host and "
                    "the sandbox; secpod's mounts are always rprivate")


def volume_name(name: str) -> str:
    """A volume's name in Docker's form; raises UsageError."""
    from secpod.sandbox import volumes

    return volumes.check_name(name)


def bind_source(src: str) -> str:
    """An absolute, existing host path, symlinks resolved (the form the profile judges)."""
    path = Path(src).expanduser()
    if not path.is_absolute():
        raise UsageError(f"the volume source {src!r} is not an absolute path",
                         hint="give the host path in full (e.g. $PWD/dir), or a volume's name")
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError) as e:
        raise UsageError(f"the volume source {src} does not exist",
                         hint="create it first; secpod does not create host paths") from e


def check_destination(dst: str, where: str) -> str:
    norm = os.path.normpath(dst)
    if not dst.startswith("/") or norm in ("/", "//") or ".." in dst.split("/") \
            or "\0" in dst:
        raise UsageError(f"the mount destination {dst!r} in {where!r} must be an absolute "
                         "path below /", hint="e.g. /data")
    return "/" + norm.lstrip("/")


# Docker's --mount keys (docs.docker.com, "--mount"): the common ones, then each type's.
_MOUNT_ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}
_MOUNT_KEYS = {
    "bind": ("bind-propagation", "bind-recursive", "bind-nonrecursive", "consistency"),
    "volume": ("volume-nocopy", "volume-subpath", "volume-label", "volume-driver",
               "volume-opt", "consistency"),
    "tmpfs": ("tmpfs-size", "tmpfs-mode"),
}
_BOOL_KEYS = ("readonly", "volume-nocopy", "bind-nonrecursive")
_MOUNT_HINT = ("use --mount type=bind,source=/host/path,target=/path[,readonly], "
               "type=volume,source=NAME,target=/path[,readonly][,volume-nocopy] or "
               "type=tmpfs,target=/path[,tmpfs-size=64m][,tmpfs-mode=1777]")


def _mount_bool(text: str, key: str, value: str) -> bool:
    # Go's strconv.ParseBool, which Docker uses.
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise UsageError(f"--mount {text!r}: {key} takes true or false", hint=_MOUNT_HINT)


def _mount_options(text: str) -> dict[str, str | list[str]]:
    opts: dict[str, str | list[str]] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = _MOUNT_ALIASES.get(key.strip(), key.strip())
        if not key:
            raise UsageError(f"--mount {text!r} has an empty option", hint=_MOUNT_HINT)
        if key in ("volume-label", "volume-opt"):
            if not sep or not value:
                raise UsageError(f"--mount {text!r}: {key} takes KEY=VALUE", hint=_MOUNT_HINT)
            got = opts.setdefault(key, [])
            assert isinstance(got, list)
            got.append(value)
            continue
        if key in opts:
            raise UsageError(f"--mount {text!r} gives {key} twice", hint=_MOUNT_HINT)
        if not sep and key in _BOOL_KEYS:
            value = "true"
        elif not sep:
            raise UsageError(f"--mount {text!r}: {key} needs a value ({key}=...)",
                             hint=_MOUNT_HINT)
        opts[key] = value
    return opts


def parse_mount(text: str) -> Mount:
    """Docker's ``--mount`` for the types bind, volume and tmpfs: ``type=``,
    ``source``/``src``, ``target``/``destination``/``dst``, ``readonly``/``ro``, then each
    type's keys (``bind-propagation``, ``bind-recursive``, ``volume-nocopy``,
    ``volume-subpath``, ``volume-label``, ``tmpfs-size``, ``tmpfs-mode``, ...). A key
    secpod does not know, or of another type, is an error naming the key."""
    opts = _mount_options(text)
    kind = str(opts.pop("type", "volume"))
    if kind not in _MOUNT_KEYS:
        raise UsageError(f"--mount {text!r}: unknown type {kind!r}",
                         hint="secpod mounts type=bind, type=volume or type=tmpfs")
    for key in opts:
        if key not in ("source", "target", "readonly", *_MOUNT_KEYS[kind]):
            other = next((t for t, keys in _MOUNT_KEYS.items() if key in keys), None)
            raise UsageError(f"--mount {text!r}: unknown option {key!r}"
                             + (f" (it is for type={other})" if other else ""),
                             hint=_MOUNT_HINT)
    target = str(opts.pop("target", ""))
    if not target:
        raise UsageError(f"--mount {text!r} has no target", hint=_MOUNT_HINT)
    dst = check_destination(target, text)
    ro = _mount_bool(text, "readonly", str(opts.pop("readonly", "false")))
    opts.pop("consistency", None)   # Docker ignores it on Linux, and so does secpod
    source = str(opts.pop("source", ""))
    if kind == "bind":
        return _bind_mount(text, dst, source, ro, opts)
    if kind == "volume":
        return _volume_mount(text, dst, source, ro, opts)
    if source:
        raise UsageError(f"--mount {text!r}: a tmpfs has no source", hint=_MOUNT_HINT)
    size = opts.get("tmpfs-size")
    mode = opts.get("tmpfs-mode")
    return Mount("tmpfs", dst, read_only=ro,
                 size=None if size is None else parse_size(str(size), "tmpfs-size"),
                 mode=None if mode is None else _mode(str(mode), text))


def _bind_mount(text: str, dst: str, source: str, ro: bool,
                opts: dict[str, str | list[str]]) -> Mount:
    propagation = opts.get("bind-propagation", "rprivate")
    if propagation not in ("rprivate", "private"):
        if propagation in ("shared", "rshared", "slave", "rslave"):
            raise UsageError(f"--mount {text!r}: bind-propagation={propagation} is refused",
                             hint=_PROPAGATION_WHY)
        raise UsageError(f"--mount {text!r}: bind-propagation={propagation} is not a "
                         "propagation", hint="use rprivate (the default) or private")
    recursive = opts.get("bind-recursive", "enabled")
    if recursive not in ("enabled", "disabled"):
        raise UsageError(f"--mount {text!r}: bind-recursive={recursive} is not supported",
                         hint="use bind-recursive=enabled (the default) or disabled")
    nonrecursive = _mount_bool(text, "bind-nonrecursive",
                               str(opts.get("bind-nonrecursive", "false")))
    if not source:
        raise UsageError(f"--mount {text!r} has no source", hint=_MOUNT_HINT)
    return Mount("bind", dst, bind_source(source), read_only=ro,
                 recursive=recursive == "enabled" and not nonrecursive)


def _volume_mount(text: str, dst: str, source: str, ro: bool,
                  opts: dict[str, str | list[str]]) -> Mount:
    if not source:
        raise UsageError(f"--mount {text!r}: anonymous volumes are not supported",
                         hint="name the volume: type=volume,source=NAME,target=/path")
    driver = opts.get("volume-driver", "local")
    if driver != "local":
        raise UsageError(f"--mount {text!r}: volume-driver={driver} is not supported",
                         hint="secpod's volumes are local folders in your store")
    if "volume-opt" in opts:
        raise UsageError(f"--mount {text!r}: volume-opt is not supported: the local "
                         "driver's options mount a device or NFS, which needs root",
                         hint="mount it on the host and bind it: type=bind,source=...")
    subpath = str(opts.get("volume-subpath", ""))
    if subpath:
        norm = os.path.normpath(subpath)
        if subpath.startswith("/") or norm == "." or ".." in subpath.split("/") \
                or "\0" in subpath:
            raise UsageError(f"--mount {text!r}: volume-subpath must be a relative path "
                             "inside the volume", hint="e.g. volume-subpath=logs/app")
        subpath = norm
    labels = opts.get("volume-label", [])
    assert isinstance(labels, list)
    out: dict[str, str] = {}
    for item in labels:
        _label_item(item, "volume-label", out)
    return Mount("volume", dst, volume_name(source), read_only=ro,
                 nocopy=_mount_bool(text, "volume-nocopy",
                                    str(opts.get("volume-nocopy", "false"))),
                 subpath=subpath, labels=tuple(out.items()))


def parse_tmpfs(text: str) -> Mount:
    """``--tmpfs DST[:size=SIZE,mode=MODE,ro,exec]`` (always nosuid and nodev)."""
    dst, _, options = text.partition(":")
    size = mode = None
    ro = exe = False
    for opt in filter(None, options.split(",")):
        key, sep, value = opt.partition("=")
        if key == "size" and sep:
            size = parse_size(value, "--tmpfs size")
        elif key == "mode" and sep:
            mode = _mode(value, text)
        elif opt in ("ro", "rw"):
            ro = opt == "ro"
        elif opt in ("exec", "noexec"):
            exe = opt == "exec"
        elif opt in ("nosuid", "nodev"):
            continue
        else:
            raise UsageError(f"--tmpfs {text!r}: unsupported option {opt!r}",
                             hint="options: size=SIZE, mode=MODE, ro, rw, exec, noexec "
                                  "(suid and dev are never allowed)")
    return Mount("tmpfs", check_destination(dst, text), read_only=ro, size=size, mode=mode,
                 exec_=exe)


def check_destinations(mounts: Iterable[Mount]) -> None:
    seen: set[str] = set()
    for m in mounts:
        if m.destination in seen:
            raise UsageError(f"two mounts at {m.destination}")
        seen.add(m.destination)


def _mode(value: str, where: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777 or mode & 0o6000:
        raise UsageError(f"invalid tmpfs mode {value!r} in {where!r}",
                         hint="an octal mode without setuid/setgid bits, e.g. 1777 or 700")
    return mode


# -- security --------------------------------------------------------------------------

def parse_security_opts(opts: Iterable[str]) -> Security:
    """``--security-opt`` values (the capability and read-only fields stay default)."""
    seccomp = apparmor = None
    nnp = None
    label_disable = False
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")   # Docker's older "seccomp:FILE"
        if not sep and opt == "no-new-privileges":
            key, sep, value = opt, "=", "true"
        if not sep or key not in _SECURITY_OPTS or not value:
            raise UsageError(f"unsupported --security-opt {opt!r}", hint=_SECURITY_HINT)
        if key == "seccomp":
            seccomp = value if value == "unconfined" else os.path.abspath(value)
        elif key == "no-new-privileges":
            if value not in ("true", "false"):
                raise UsageError(f"--security-opt {opt!r}: use no-new-privileges=true|false")
            nnp = value == "true"
        elif key == "label":
            if value != "disable":
                raise UsageError(f"--security-opt {opt!r}: only label=disable is supported",
                                 hint="the SELinux type comes from the profile")
            label_disable = True
        else:
            apparmor = value
    return Security(seccomp=seccomp, no_new_privileges=nnp, label_disable=label_disable,
                    apparmor=apparmor)


def parse_caps(names: Iterable[str], flag: str) -> tuple[str, ...]:
    """CAP_* names (``net_raw``, ``NET_RAW`` and ``CAP_NET_RAW`` alike), or ALL."""
    from secpod.policies import capabilities as caps_mod

    out = []
    for name in names:
        if name.strip().upper() == "ALL":
            out.append("ALL")
            continue
        try:
            out.append(caps_mod.normalize(name))
        except UsageError as e:
            raise UsageError(f"{flag}: {e.message}", hint=e.hint) from e
    return tuple(out)


def parse_network(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "loopback":
        return "private"
    if value not in NETWORKS:
        from secpod.errors import NetworkRequestError

        raise NetworkRequestError(f"unsupported --network {value!r}",
                         hint="use --network none, private, pasta or host "
                              "(docs/networking.md)")
    return value


def parse_ports(values: Iterable[str]) -> tuple[PortMapping, ...]:
    """``-p`` values (secpod.network.ports owns the syntax); raises UsageError."""
    if not values:
        return ()
    from secpod.network import ports

    out = tuple(ports.parse_publish(v) for v in values)
    ports.check_distinct(out)
    return out


def parse_network_options(publish_all: bool, dns: Iterable[str],
                          add_hosts: Iterable[str]) -> Network:
    if not publish_all and not dns and not add_hosts:
        return Network()
    from secpod.network import ports

    return Network(publish_all=publish_all, dns=tuple(ports.parse_dns(d) for d in dns),
                   add_hosts=tuple(ports.parse_add_host(h) for h in add_hosts))


def check_hostname(name: str) -> str:
    """A host name the kernel takes (RFC 1123 labels, at most 64 bytes); raises UsageError."""
    labels = name.split(".")
    if (not name or len(name) > 64 or not all(
            0 < len(lb) <= 63 and lb[0] != "-" and lb[-1] != "-"
            and all(c.isascii() and (c.isalnum() or c == "-") for c in lb) for lb in labels)):
        raise UsageError(f"invalid host name {name!r}",
                         hint="letters, digits and '-' in dot-separated labels, at most 64 "
                              "characters (-h/--hostname NAME)")
    return name


# -- resources -------------------------------------------------------------------------

def parse_size(value: str, flag: str) -> int:
    from secpod.errors import ProfileError
    from secpod.policies.profile import parse_size as profile_size

    try:
        return profile_size(value, flag)
    except ProfileError as e:
        raise UsageError(e.message, hint=e.hint) from e


def _positive(value: str | None, flag: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) <= 0:
        raise UsageError(f"{flag} {value!r}: give a positive number")
    return int(value)


def _cpu_shares(value: str | None) -> int | None:
    shares = _positive(value, "--cpu-shares")
    if shares is not None and not 2 <= shares <= 262144:
        raise UsageError(f"--cpu-shares {value}: give a number from 2 to 262144")
    return shares


# -- Docker's other run flags (issue 16) ---------------------------------------------

PULL_POLICIES = ("always", "missing", "never")
UNLIMITED = 2**64 - 1   # RLIM_INFINITY as the OCI config spells it
_ATTACH = ("stdin", "stdout", "stderr")


def add_docker_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags Docker and Podman scripts pass to ``run``/``create`` besides secpod's
    own (docs/docker-cli.md says what each does and why some are refused)."""
    from secpod.cli._flags import bool_flag

    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY[=VALUE]",
                   help="a label on the container (over the image's)")
    p.add_argument("--label-file", action="append", default=[], metavar="FILE",
                   help="read KEY=VALUE label lines from FILE (# comments)")
    bool_flag(p, "--init", dest="init",
              help="run catatonit as PID 1: it reaps zombies and passes signals on")
    p.add_argument("--stop-signal", metavar="SIGNAL",
                   help="the signal stop sends first (default: the image's, else TERM)")
    p.add_argument("--stop-timeout", metavar="SECS",
                   help="seconds stop waits before SIGKILL (default 10)")
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="a resource limit, e.g. nofile=1024:2048 (at most your own hard limit)")
    p.add_argument("--cidfile", metavar="FILE",
                   help="write the container id to FILE (which must not exist)")
    bool_flag(p, "--replace", dest="replace",
              help="with --name: remove the container of that name first (stopping it)")
    p.add_argument("--pull", choices=PULL_POLICIES, default="missing",
                   help="pull the image: always, when missing from your store (default), "
                        "or never")
    bool_flag(p, "--tls-verify", dest="tls_verify", default=True,
              help="for --pull: verify TLS (the default); =false also allows plain HTTP")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="the platform the image must be (it is never emulated)")
    p.add_argument("--memory-swap", metavar="SIZE",
                   help="memory plus swap limit (needs -m; -1: unlimited swap)")
    p.add_argument("--cpus", metavar="N", help="CPU time limit, in CPUs (e.g. 1.5)")
    bool_flag(p, "--privileged", dest="privileged",
              help="refused: secpod never runs a container with all privileges")
    p.add_argument("-a", "--attach", action="append", default=[], metavar="STREAM",
                   help="stdin, stdout, stderr: a foreground run attaches all of "
                        "stdout and stderr (and stdin with -i)")
    bool_flag(p, "--sig-proxy", dest="sig_proxy", default=True,
              help="pass signals to the container (the default; =false is refused)")


def docker_resources(args: argparse.Namespace) -> dict[str, Any]:
    """The Resources fields of --memory-swap, --cpus and --ulimit."""
    swap = None
    if args.memory_swap is not None:
        if args.memory is None:
            raise UsageError("--memory-swap needs -m/--memory",
                             hint="e.g. -m 256m --memory-swap 512m (memory plus swap)")
        memory = parse_size(args.memory, "--memory")
        swap = -1 if args.memory_swap == "-1" else parse_size(args.memory_swap,
                                                              "--memory-swap")
        if swap != -1 and swap < memory:
            raise UsageError(f"--memory-swap {args.memory_swap} is below -m {args.memory}",
                             hint="--memory-swap is memory plus swap: at least -m, or -1")
    return {"memory_swap": swap, "cpus": parse_cpus(args.cpus),
            "ulimits": tuple(parse_ulimit(u) for u in args.ulimit)}


def docker_spec_fields(args: argparse.Namespace, *, detach: bool) -> dict[str, Any]:
    """The ContainerSpec fields of Docker's other run flags; refuses what secpod cannot
    honour (--privileged, --sig-proxy=false, a partial -a) with the reason."""
    if args.privileged:
        raise UsageError(
            "--privileged is refused: it gives the container every capability, no "
            "seccomp filter, no AppArmor or SELinux confinement and the host's devices",
            hint="add only what the program needs: --cap-add CAP, --security-opt ..., "
                 "-v /host/path:/path, or a profile that allows it (secpod profile ls)")
    if not args.sig_proxy:
        raise UsageError(
            "--sig-proxy=false is refused: a foreground secpod run is the container's "
            "monitor and passes signals on, so that its exit is recorded",
            hint="run it with -d and signal it with secpod kill -s SIGNAL CONTAINER")
    check_attach(args.attach, detach=detach, interactive=args.interactive)
    if args.replace and not args.name:
        raise UsageError("--replace needs --name", hint="--replace --name NAME")
    return {
        "labels": parse_labels(args.label, args.label_file),
        "init": args.init,
        "stop_signal": None if args.stop_signal is None else parse_stop_signal(args.stop_signal),
        "stop_timeout": None if args.stop_timeout is None else _stop_timeout(args.stop_timeout),
        "pull": args.pull,
        "platform": None if args.platform is None else parse_platform(args.platform),
        "tls_verify": args.tls_verify,
    }


def check_attach(streams: Iterable[str], *, detach: bool, interactive: bool) -> None:
    """``-a``: the foreground run holds stdout and stderr together (and stdin with
    ``-i``), so only the whole set is asked for; a part of it is refused."""
    asked = {s.lower() for s in streams}
    if not asked:
        return
    unknown = asked - set(_ATTACH)
    if unknown:
        raise UsageError(f"-a/--attach {sorted(unknown)[0]!r}: not a stream",
                         hint="-a takes stdin, stdout or stderr")
    if detach:
        raise UsageError("-a/--attach and -d conflict, as in Docker",
                         hint="a detached container's output: secpod logs -f CONTAINER")
    if not {"stdout", "stderr"} <= asked:
        raise UsageError(
            f"-a {' -a '.join(sorted(asked))}: a foreground secpod run passes both stdout "
            "and stderr on (and records both in the log); it cannot leave one out",
            hint="redirect in the shell instead, e.g. 2>/dev/null")
    if "stdin" in asked and not interactive:
        raise UsageError("-a stdin needs -i: stdin stays closed otherwise",
                         hint="add -i (and -t for a terminal)")


def parse_labels(items: Iterable[str], files: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """``--label-file`` lines first, then ``--label`` (a later KEY wins); ``KEY`` alone
    is an empty value, as in Docker."""
    out: dict[str, str] = {}
    for path in files:
        for where, item in _env_file_lines(path, "--label-file"):
            _label_item(item, where, out)
    for item in items:
        _label_item(item, "--label", out)
    return tuple(out.items())


def _label_item(item: str, where: str, out: dict[str, str]) -> None:
    key, _, value = item.partition("=")
    key = key.strip()
    if not key or any(c.isspace() for c in key) or "\0" in item:
        raise UsageError(f"invalid label {item!r} ({where})", hint="use KEY=VALUE or KEY")
    out[key] = value


def parse_stop_signal(name: str) -> str:
    """``SIGTERM``, ``TERM``, ``15``: the name Docker's inspect shows (``SIGTERM``)."""
    from secpod.sandbox import signals

    try:
        sig = signals.normalise(name)
    except UsageError as e:
        raise UsageError(f"--stop-signal: {e.message}", hint=e.hint) from e
    return sig if sig.isdigit() else "SIG" + sig


def _stop_timeout(value: str) -> int:
    if not value.isdigit():
        raise UsageError(f"--stop-timeout {value!r}: give whole seconds (0 or more)",
                         hint="e.g. --stop-timeout 30")
    return int(value)


def parse_cpus(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        cpus = float(value)
    except ValueError:
        cpus = -1.0
    if not 0.01 <= cpus <= (os.cpu_count() or 1):
        raise UsageError(f"--cpus {value!r}: give a number of CPUs from 0.01 to "
                         f"{os.cpu_count() or 1} (this host's)", hint="e.g. --cpus 0.5")
    return cpus


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """``NAME=SOFT[:HARD]`` (Docker's form); -1 is unlimited. A value above the hard
    limit the caller has is refused: a rootless container cannot raise it."""
    import resource

    from secpod.policies.profile import RLIMITS

    hint = "use --ulimit NAME=SOFT[:HARD], NAME one of " + ", ".join(RLIMITS)
    name, sep, values = text.partition("=")
    name = name.strip().lower().removeprefix("rlimit_")
    if not sep or name not in RLIMITS:
        raise UsageError(f"invalid --ulimit {text!r}", hint=hint)
    soft_text, _, hard_text = values.partition(":")
    try:
        soft, hard = (UNLIMITED if v.strip() == "-1" else int(v)
                      for v in (soft_text, hard_text or soft_text))
    except ValueError:
        raise UsageError(f"invalid --ulimit {text!r}: the limits are numbers", hint=hint) from None
    if not 0 <= soft <= hard <= UNLIMITED:
        raise UsageError(f"invalid --ulimit {text!r}: need 0 <= soft <= hard", hint=hint)
    mine = resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper()))[1]
    mine = UNLIMITED if mine == resource.RLIM_INFINITY else mine
    if hard > mine:
        raise UsageError(
            f"--ulimit {text}: the hard limit is above yours ({mine}); a rootless "
            "container cannot raise it", hint=f"give at most {name}={mine}:{mine} "
                                              "(ulimit -H shows yours)")
    return name, soft, hard


def parse_platform(text: str) -> str:
    """``OS/ARCH[/VARIANT]`` in OCI's words (``linux/amd64``, ``linux/arm64/v8``)."""
    parts = text.strip().lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(p and p.isascii() and p.replace("_", "").isalnum()
                                           for p in parts):
        raise UsageError(f"invalid --platform {text!r}", hint="use OS/ARCH[/VARIANT], "
                                                               "e.g. linux/amd64")
    return "/".join(parts)
# -- services (docs/services.md) --------------------------------------------------------

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
LOG_DRIVERS = ("k8s-file", "none", "journald")
SDNOTIFY = ("conmon", "container", "ignore")


def parse_restart(value: str, *, auto_remove: bool = False) -> str:
    """``--restart no|always|unless-stopped|on-failure[:N]`` in its normal form."""
    name, sep, count = value.partition(":")
    hint = "use --restart no, always, unless-stopped, on-failure or on-failure:N (N >= 0)"
    if name not in RESTART_POLICIES:
        raise UsageError(f"invalid --restart {value!r}", hint=hint)
    if sep and (name != "on-failure" or not count.isdigit()):
        raise UsageError(f"invalid --restart {value!r}: only on-failure takes a count",
                         hint=hint)
    if name != "no" and auto_remove:
        raise UsageError(f"--restart {value} and --rm conflict",
                         hint="a container removed when it exits cannot be run again")
    return f"on-failure:{int(count)}" if sep else name


def parse_log_driver(value: str) -> str:
    if value == "json-file":
        raise UsageError(
            "--log-driver json-file is not supported: conmon 2.1 writes only k8s-file, "
            "journald or nothing, and without a daemon nothing could rewrite its log as "
            "Docker's JSON while the container runs",
            hint="use k8s-file (secpod logs reads it; --timestamps gives each line's time)")
    if value not in LOG_DRIVERS:
        raise UsageError(f"unsupported --log-driver {value!r}",
                         hint="use k8s-file, none or journald")
    return value


def parse_log_opts(items: Iterable[str]) -> int | None:
    """``--log-opt max-size=SIZE,max-file=2`` -> the container's log bound in bytes (the
    two files' total), None when not given."""
    size = None
    for item in items:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if key == "max-size" and sep:
                size = parse_size(value, "--log-opt max-size")
            elif key == "max-file" and sep:
                if value != "2":
                    raise UsageError(
                        f"--log-opt max-file={value}: secpod keeps exactly two log files",
                        hint="the current file and one rotated (docs/runner.md, Logs); "
                             "max-size bounds each")
            else:
                raise UsageError(f"unsupported --log-opt {part!r}",
                                 hint="use max-size=SIZE (e.g. 10m) or max-file=2")
    if size is None:
        return None
    from secpod.sandbox.logs import MIN_SIZE_MAX

    if 2 * size < MIN_SIZE_MAX:
        raise UsageError(f"--log-opt max-size={size}: at least {MIN_SIZE_MAX // 2} bytes",
                         hint="e.g. max-size=1m")
    return 2 * size


def parse_sdnotify(value: str) -> str:
    if value == "container":
        raise UsageError(
            "--sdnotify container is not supported yet: the container would need systemd's "
            "notify socket mounted in and NOTIFY_SOCKET set, which secpod does not do yet",
            hint="use --sdnotify conmon (READY=1 once the container runs) or ignore")
    if value not in SDNOTIFY:
        raise UsageError(f"invalid --sdnotify {value!r}", hint="use conmon, container or ignore")
    return value


HEALTH_ACTIONS = ("none", "kill", "stop", "restart")


def parse_health(args: argparse.Namespace) -> Health | None:
    """The ``--health-*`` flags; None when none is given (the image's check applies)."""
    if args.health_on_failure not in HEALTH_ACTIONS:
        raise UsageError(f"invalid --health-on-failure {args.health_on_failure!r}",
                         hint="use none, kill, stop or restart")
    given = [args.health_cmd, args.health_interval, args.health_timeout,
             args.health_retries, args.health_start_period]
    if args.no_healthcheck:
        if any(v is not None for v in given):
            raise UsageError("--no-healthcheck and --health-* flags conflict")
        return Health(test=("NONE",))
    if all(v is None for v in given) and args.health_on_failure == "none":
        return None
    if args.health_cmd is not None and not args.health_cmd.strip():
        raise UsageError("--health-cmd is empty", hint="give a command, or --no-healthcheck")

    def seconds(value: str | None, flag: str) -> float | None:
        if value is None:
            return None
        from secpod._times import parse_duration  # only when asked: not on every run

        s = parse_duration(value, flag)
        if s <= 0 and flag != "--health-start-period":
            raise UsageError(f"{flag} {value!r}: give a duration above zero")
        return s

    retries = None
    if args.health_retries is not None:
        if not args.health_retries.isdigit() or int(args.health_retries) < 1:
            raise UsageError(f"--health-retries {args.health_retries!r}: give a number from 1")
        retries = int(args.health_retries)
    return Health(
        test=("CMD-SHELL", args.health_cmd) if args.health_cmd is not None else (),
        interval=seconds(args.health_interval, "--health-interval"),
        timeout=seconds(args.health_timeout, "--health-timeout"),
        retries=retries,
        start_period=seconds(args.health_start_period, "--health-start-period"),
        on_failure=args.health_on_failure)
