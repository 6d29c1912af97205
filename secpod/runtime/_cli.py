"""What crun and runc share: both are driven by one command line per operation.

:class:`CommandLineRuntime` runs ``BINARY GLOBAL-ARGS SUBCOMMAND ...`` and turns a
failure into RuntimeFailed with the runtime's own words; the subclasses say only
how they differ (their global and log arguments, how a terminal is handed over,
what they refuse or ignore in a config).
"""

from __future__ import annotations

import json

from secpod.errors import RuntimeFailed

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from secpod.runtime import Features


class CommandLineRuntime:
    """One OCI runtime binary with this user's state root (``--root``)."""

    name = "runtime"
    #: True when the runtime hands a terminal's master over ``--console-socket`` in the
    #: foreground (crun); False when it wants a terminal as its own stdio (runc).
    console_socket_in_foreground = True

    __slots__ = ("binary", "root")

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    # -- the command line -------------------------------------------------------------

    def log_args(self, log: Path) -> list[str]:
        raise NotImplementedError

    def extra_global_args(self) -> list[str]:
        return []

    def global_args(self, log: Path | None = None) -> list[str]:
        """The arguments before the subcommand: state root, then the runtime's own
        (cgroups), then the JSON log file when one is given."""
        return [f"--root={self.root}", *self.extra_global_args(),
                *(self.log_args(log) if log is not None else [])]

    def argv(self, *args: str, log: Path | None = None) -> list[str]:
        return [self.binary, *self.global_args(log), *args]

    def call(self, *args: str, what: str, timeout: float = 60, log: Path | None = None) -> str:
        """Run a subcommand; raise RuntimeFailed with the runtime's own words on failure."""
        import subprocess
        try:
            proc = subprocess.run(self.argv(*args, log=log), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise RuntimeFailed(
                f"{self.name} {args[0]} did not answer within {timeout:.0f}s while {what}",
                hint="secpod ps -a; secpod rm -f the container",
            ) from e
        if proc.returncode != 0:
            raise RuntimeFailed(
                f"{self.name} failed while {what}: {last_line(proc.stderr)}",
                hint="secpod doctor checks what this host allows",
            )
        return proc.stdout

    # -- the operations ---------------------------------------------------------------

    def create(self, cid: str, bundle: Path, *, pid_file: Path, log: Path) -> None:
        """Create the container with /dev/null as its stdio (a monitor that keeps its
        output, conmon, runs ``create`` itself): a pipe here would be held open by the
        container and the call would wait for it to exit. The reason of a failure is
        the last error the runtime wrote to ``log``."""
        import subprocess
        argv = self.argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid,
                         log=log)
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=60, check=False)
        except subprocess.TimeoutExpired as e:
            raise RuntimeFailed(f"{self.name} create did not answer within 60s",
                                hint="secpod ps -a; secpod rm -f the container") from e
        if proc.returncode != 0:
            raise RuntimeFailed(
                f"{self.name} failed while creating the container: "
                f"{self.error_words(log) or 'no message'}",
                hint="secpod doctor checks what this host allows",
            )

    def start(self, cid: str) -> None:
        self.call("start", cid, what="starting the container")

    def state(self, cid: str) -> dict[str, Any] | None:
        """The runtime's state of the container, or None when it does not know it."""
        import subprocess
        proc = subprocess.run(self.argv("state", cid), capture_output=True, text=True,
                              check=False, timeout=30)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def all_states(self) -> dict[str, dict[str, Any]]:
        """All containers the runtime knows in this state root, by id."""
        if not self.root.is_dir() or not any(self.root.iterdir()):
            return {}
        out = self.call("list", "--format=json", what="listing containers", timeout=30)
        try:
            items = json.loads(out or "[]")  # runc prints null for none
        except json.JSONDecodeError as e:
            raise RuntimeFailed(f"{self.name} list printed something that is not JSON: {e}") \
                from e
        return {item["id"]: item for item in items or [] if isinstance(item, dict)}

    def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> None:
        """Send ``signal`` (a name without SIG, or a number: callers normalise it, as
        runc refuses unknown names and crun ignores them)."""
        args = ["kill", *(["--all"] if all_processes else []), cid, signal]
        self.call(*args, what=f"sending {signal}")

    def delete(self, cid: str, *, force: bool = False) -> None:
        """Forget the container; no error when the runtime does not know it."""
        import subprocess
        subprocess.run(self.argv("delete", *(["--force"] if force else []), cid),
                       capture_output=True, check=False, timeout=60)

    def knows(self, cid: str) -> bool:
        """Whether the runtime has state for the container (its folder in the root)."""
        return (self.root / cid).exists()

    def exec_argv(self, process_file: Path) -> list[str]:
        return self.argv("exec", "--process", str(process_file))

    def run_argv(self, log: Path) -> list[str]:
        return self.argv("run", log=log)

    # -- what a config asks that this runtime cannot do -------------------------------

    def features(self) -> Features:
        raise NotImplementedError

    def refuses(self, config: dict[str, Any]) -> list[str]:
        """What in ``config`` this runtime would fail on (secpod refuses it first, with
        the reason, instead of the runtime's words after a half-made start)."""
        return []

    def unenforced(self, config: dict[str, Any]) -> list[str]:
        """What in ``config`` this runtime would silently ignore or do otherwise."""
        return []

    def precompile(self, config: dict[str, Any]) -> str | None:
        """Put into ``config`` what secpod compiled for this runtime ahead of time;
        the digest of the seccomp program it will load as given, or None when the
        runtime compiles the filter itself."""
        return None

    def error_words(self, log: Path) -> str:
        """The last error the runtime wrote to its JSON log, or ''. crun and runc write
        the same keys; runc logs a warning before each rootless error, so the last
        error-like line is the one."""
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if line.strip():
                    return line.strip()
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "warning"):
                return str(entry.get("msg", "")).strip()
        return ""


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def seccomp_notify_rules(config: dict[str, Any]) -> bool:
    """Whether the config's seccomp filter has a SCMP_ACT_NOTIFY rule."""
    seccomp = config.get("linux", {}).get("seccomp") or {}
    return any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in seccomp.get("syscalls", []))
