"""A container as Docker's and Podman's scripts read it: ``inspect`` and ``ps`` fields.

``inspect`` prints :func:`inspect_view`: Docker's keys (``Id``, ``State.Status``,
``State.ExitCode``, ``Config.Env``, ``HostConfig``, ``Mounts``, ``NetworkSettings``, ...)
with secpod's own facts (profile, confinement, trust decision, what was not enforced,
the generated OCI config) under one ``Secpod`` key. ``ps --format`` templates see
:func:`ps_fields`: Docker's ``ps`` placeholders (``.ID``, ``.Names``, ``.Status``, ...).
Values secpod does not have are Docker's zero values, never invented.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from secpod.sandbox.state import Container

#: Docker's time of a container that has not started or finished.
ZERO_TIME = "0001-01-01T00:00:00Z"


def inspect_view(ctr: Container, status: str, pid: int | None, config: dict[str, Any],
                 secpod: dict[str, Any]) -> dict[str, Any]:
    """The Docker-shaped record of ``ctr`` (``status`` and ``pid`` from its runtime;
    ``config``: its bundle's config.json; ``secpod``: secpod's own facts)."""
    process = config.get("process") or {}
    running = status in ("running", "paused")
    cmd = ctr.args[len(ctr.entrypoint):]
    security = []
    if process.get("noNewPrivileges"):
        security.append("no-new-privileges")
    seccomp = (config.get("linux") or {}).get("seccomp")
    security.append("seccomp=" + ("secpod-profile" if seccomp else "unconfined"))
    return {
        "Id": ctr.id,
        "Created": ctr.created,
        "Path": ctr.args[0] if ctr.args else "",
        "Args": ctr.args[1:],
        "State": {
            "Status": "restarting" if ctr.restart_pending else
                      "exited" if status == "stopped" else status,
            "Running": status == "running",
            "Paused": status == "paused",
            "Restarting": bool(ctr.restart_pending),
            "OOMKilled": False,
            "Dead": False,
            "Pid": pid if running and pid else 0,
            "ExitCode": ctr.exit_code if ctr.exit_code is not None else 0,
            "Error": "",
            "StartedAt": ctr.started or ZERO_TIME,
            "FinishedAt": ctr.finished or ZERO_TIME,
            **({"Health": _health(ctr)} if ctr.healthcheck else {}),
        },
        "Image": ctr.image_digest,
        "ImageName": ctr.image_ref,
        "Name": ctr.name,
        "RestartCount": ctr.restart_count,
        "Platform": "linux",
        "AppArmorProfile": process.get("apparmorProfile", ""),
        "ProcessLabel": process.get("selinuxLabel", ""),
        "Config": {
            "Hostname": config.get("hostname", ""),
            "User": ctr.user or "",
            "Env": list(process.get("env") or []),
            "Cmd": cmd,
            "Entrypoint": list(ctr.entrypoint),
            "Image": ctr.image_ref,
            "WorkingDir": process.get("cwd", "/"),
            "Labels": dict(ctr.labels),
            "StopSignal": ctr.stop_signal,
            "StopTimeout": ctr.stop_timeout,
            "Tty": ctr.tty,
            **({"Healthcheck": _healthcheck(ctr.healthcheck)} if ctr.healthcheck else {}),
        },
        "HostConfig": {
            "AutoRemove": ctr.auto_remove,
            "ReadonlyRootfs": bool((config.get("root") or {}).get("readonly")),
            "Privileged": False,
            "CapAdd": None,
            "CapDrop": None,
            "SecurityOpt": security,
            "NetworkMode": ctr.network_mode,
            "PortBindings": port_bindings(ctr.ports),
            "Runtime": ctr.runtime,
            "RestartPolicy": _restart_policy(ctr.restart_policy),
            "LogConfig": {"Type": ctr.log_driver, "Config": {}},
            "Binds": [_bind(m) for m in ctr.mounts if m.get("type") == "bind"],
            "Tmpfs": {m["destination"]: ",".join(m.get("options", ()))
                      for m in ctr.mounts if m.get("type") == "tmpfs"},
            "Init": ctr.init,
            "Ulimits": [{"Name": str(r.get("type", "")).removeprefix("RLIMIT_").lower(),
                         "Soft": r.get("soft"), "Hard": r.get("hard")}
                        for r in process.get("rlimits") or []],
            **_resources((ctr.confinement or {}).get("limits") or {}),
        },
        "Mounts": [_mount(m) for m in ctr.mounts],
        "NetworkSettings": {"Ports": port_bindings(ctr.ports) if running else {}},
        "Secpod": secpod,
    }


def _resources(limits: dict[str, Any]) -> dict[str, Any]:
    """HostConfig's limits as the run has them, enforced or not (Secpod.unenforced says
    which this host does not enforce)."""
    cpus = limits.get("cpus")
    return {"Memory": limits.get("memory") or 0, "MemorySwap": limits.get("memory_swap") or 0,
            "NanoCpus": round(cpus * 1e9) if cpus else 0,
            "CpuShares": limits.get("cpu_shares") or 0,
            "PidsLimit": limits.get("pids") or 0}


def port_bindings(ports: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """Docker's ``{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p['container_port']}/{p['protocol']}", []).append(
            {"HostIp": p["host_ip"], "HostPort": str(p["host_port"])})
    return out


def ports_text(ports: list[dict[str, Any]]) -> str:
    """Docker's PORTS column: ``127.0.0.1:8080->80/tcp, ...``."""
    from secpod.network import describe_port

    return ", ".join(describe_port(p) for p in ports)


def _health(ctr: Container) -> dict[str, Any]:
    h = ctr.health or {}
    return {"Status": h.get("Status", "starting"), "FailingStreak": h.get("FailingStreak", 0),
            "Log": list(h.get("Log") or [])}


def _healthcheck(hc: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``Config.Healthcheck`` (times in nanoseconds)."""
    return {"Test": list(hc["test"]), "Interval": int(hc["interval"] * 1e9),
            "Timeout": int(hc["timeout"] * 1e9), "StartPeriod": int(hc["start_period"] * 1e9),
            "Retries": hc["retries"]}


def _restart_policy(policy: str) -> dict[str, Any]:
    """Docker's ``HostConfig.RestartPolicy``: ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""
    name, _, count = policy.partition(":")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def _rw(m: dict[str, Any]) -> bool:
    return "ro" not in m.get("options", ())


def _volume(m: dict[str, Any]) -> str | None:
    """The named volume a recorded mount is of, or None."""
    if m.get("type") != "bind":
        return None
    from secpod.sandbox.volumes import name_of

    return name_of(str(m.get("source", "")))


def _bind(m: dict[str, Any]) -> str:
    return f"{_volume(m) or m.get('source', '')}:{m['destination']}:{'rw' if _rw(m) else 'ro'}"


def _mount(m: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``Mounts`` entry: Type bind, volume (with Name and Driver) or tmpfs."""
    kind = m.get("type", "bind")
    volume = _volume(m)
    out: dict[str, Any] = {
        "Type": "volume" if volume else kind,
        "Source": m.get("source", "") if kind == "bind" else "",
        "Destination": m["destination"],
        "Mode": "",
        "RW": _rw(m),
        "Propagation": "rprivate" if kind == "bind" and not volume else "",
    }
    if volume:
        out = {"Type": "volume", "Name": volume, **out, "Driver": "local"}
        out["Type"] = "volume"
    return out


def ps_fields(row: dict[str, Any], status_text: str, created_text: str) -> dict[str, Any]:
    """The placeholders of Docker's ``ps --format`` for one ``listing`` row;
    ``status_text`` as the table shows it (``Up 3 minutes``), ``created_text``
    (``5 minutes ago``)."""
    return {
        "ID": row["id"][:12],
        "Image": row["image"],
        "Command": '"' + " ".join(row["command"]) + '"',
        "CreatedAt": row["created"],
        "RunningFor": created_text,
        "Status": status_text,
        "State": row["status"],
        "Names": row["name"],
        "Ports": ports_text(row.get("ports") or []) if row["status"] in ("running", "paused")
        else "",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((row.get("labels") or {}).items())),
        "Mounts": "",
        "Networks": "",
        "Size": "",
        # secpod's own
        "Profile": row["profile"],
        "Runtime": row["runtime"],
        "ExitCode": row["exit_code"],
        "Restarts": row.get("restart_count", 0),
    }
