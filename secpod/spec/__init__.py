"""The container spec: one typed request for one container (docs/runner.md).

A :class:`ContainerSpec` is built once, from the command line today
(:mod:`secpod.spec.flags`), later from a Kubernetes Pod or a unit file, and is
the only thing the create pipeline reads: no raw flag string goes further than
the module that parsed it. Every value in a spec is already checked for form
(absolute paths, known capability names, known modes); what it is *allowed* to
do is for the profile and the administrator's floor (:mod:`secpod.policies`).
"""

from __future__ import annotations

from secpod._record import field, record

# eq=False throughout: specs are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.


@record(frozen=True, eq=False)
class Process:
    """The container's process as asked (the image's config fills in the rest)."""

    command: tuple[str, ...] = ()                 # replaces the image's Cmd
    entrypoint: tuple[str, ...] | None = None     # None: the image's; () clears it
    env: tuple[tuple[str, str], ...] = ()          # (KEY, VALUE), in the order given
    workdir: str | None = None                    # absolute
    user: str | None = None                       # UID[:GID] or NAME[:GROUP], from the image
    interactive: bool = False
    tty: bool = False


@record(frozen=True, eq=False)
class Mount:
    """One mount the user asks for.

    ``bind``: ``source`` is an absolute, symlink-free host path that existed when the
    spec was made. ``volume``: ``source`` is a named volume's name (checked for form;
    it is made at create when it does not exist, docs/volumes.md). ``tmpfs``: no
    source; ``size`` in bytes and ``mode`` apply.
    """

    kind: str                       # "bind" | "volume" | "tmpfs"
    destination: str                # absolute, below /
    source: str = ""
    read_only: bool = False
    size: int | None = None         # tmpfs only; None: the profile's default size
    mode: int | None = None         # tmpfs only; None: 0o1777
    exec_: bool = False             # tmpfs only: programs may run from it (a weakening)
    recursive: bool = True          # bind only: rbind (False: bind-recursive=disabled)
    nocopy: bool = False            # volume only: do not copy the image's files in
    subpath: str = ""               # volume only: a folder inside the volume, relative
    labels: tuple[tuple[str, str], ...] = ()   # volume only: for a volume this run makes


@record(frozen=True, eq=False)
class Security:
    """What the run's flags change in the profile's confinement."""

    cap_add: tuple[str, ...] = ()         # CAP_* names, or ALL
    cap_drop: tuple[str, ...] = ()
    seccomp: str | None = None            # "unconfined" or an absolute file path
    no_new_privileges: bool | None = None  # None: as the profile says
    label_disable: bool = False           # --security-opt label=disable
    apparmor: str | None = None           # a profile name or "unconfined"
    read_only: bool | None = None         # None: as the profile says


@record(frozen=True, eq=False)
class Resources:
    """Resource requests; None: as the profile says. The tighter of the two applies,
    and a looser request is a weakening the floor judges."""

    pids_limit: int | None = None
    memory: int | None = None        # bytes
    cpu_shares: int | None = None
    memory_swap: int | None = None   # bytes, memory plus swap (-1: unlimited swap)
    cpus: float | None = None        # CPUs' worth of time per period (--cpus 1.5)
    ulimits: tuple[tuple[str, int, int], ...] = ()   # (rlimit name, soft, hard), --ulimit


@record(frozen=True, eq=False)
class PortMapping:
    """A published port (``-p``): ``host_ip:host_port`` on the host forwarded to
    ``container_port`` on the container's loopback (docs/networking.md)."""

    container_port: int
    host_port: int = 0                 # 0: a free port the kernel picks (-P, -p CPORT)
    host_ip: str = "127.0.0.1"
    protocol: str = "tcp"              # "tcp" | "udp"

    def __str__(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@record(frozen=True, eq=False)
class Network:
    """The run's network requests besides the mode (``spec.network``) and ``-p``
    (``spec.ports``): what ``-P``, ``--dns`` and ``--add-host`` ask."""

    publish_all: bool = False                      # -P: every EXPOSEd port
    dns: tuple[str, ...] = ()                      # --dns addresses, in order
    add_hosts: tuple[tuple[str, str], ...] = ()    # --add-host (name, address)


@record(frozen=True, eq=False)
class Health:
    """A health check as asked (``--health-*``); times in seconds, None: the image's
    value, else Docker's default (sandbox/health.py)."""

    test: tuple[str, ...] = ()          # ("CMD-SHELL", cmd) | ("CMD", arg...) | ("NONE",)
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    on_failure: str = "none"            # none | kill | stop | restart


@record(frozen=True, eq=False)
class ContainerSpec:
    """Everything ``secpod run``/``create`` is asked."""

    image: str
    process: Process = field(default_factory=Process)
    name: str | None = None
    hostname: str | None = None        # None: the short container id
    profile: str = "default"
    runtime: str | None = None         # "crun" | "runc"; None: the configured default
    detach: bool = False
    auto_remove: bool = False
    mounts: tuple[Mount, ...] = ()
    security: Security = field(default_factory=Security)
    network: str | None = None         # None: as the profile says; "none" | "private" |
    #                                    "pasta" | "host" (secpod.spec.flags.NETWORKS)
    resources: Resources = field(default_factory=Resources)
    ports: tuple[PortMapping, ...] = ()
    pod: str | None = None
    restart: str = "no"                # no | always | unless-stopped | on-failure[:N]
    log_size_max: int | None = None    # None: the profile's [logs] size_max
    labels: tuple[tuple[str, str], ...] = ()   # --label/--label-file, over the image's
    init: bool = False                 # --init: catatonit as PID 1 (secpod.sandbox.init)
    stop_signal: str | None = None     # None: the image's StopSignal, else SIGTERM
    stop_timeout: int | None = None    # seconds stop waits by default (None: 10)
    pull: str = "missing"              # "always" | "missing" | "never"
    platform: str | None = None        # OS/ARCH[/VARIANT] the image must be
    tls_verify: bool = True            # for a pull that --pull makes
    network_options: Network = field(default_factory=Network)
    log_driver: str = "k8s-file"       # k8s-file | none | journald (sandbox/logs.py)
    sdnotify: str = "conmon"           # conmon | ignore (docs/services.md)
    command_line: tuple[str, ...] = () # the words of `secpod run|create ...` that asked
    health: Health | None = None       # None: the image's Healthcheck, if it has one

    @property
    def binds(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.kind == "bind")

    @property
    def volumes(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.kind == "volume")


__all__ = ["ContainerSpec", "Health", "Mount", "Network", "PortMapping", "Process", "Resources",
           "Security"]
