"""A FakeRuntime and fake monitors, for unit tests of the lifecycle's state machine.

The fake keeps its containers in a dict, records every signal, and behaves as crun
does where the lifecycle depends on it: ``state`` is None for an unknown id, ``kill``
of a stopped container fails, and a container that a signal ends gets its exit
status (128+N) written to the exit dir, as its monitor (conmon) would.
"""

from __future__ import annotations

import signal as signalmod
import threading
from pathlib import Path
from typing import Any

from secpod.errors import RuntimeFailed
from secpod.runtime import Features


class FakeRuntime:
    name = "fake"
    binary = "/nonexistent/fake-runtime"
    console_socket_in_foreground = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.containers: dict[str, dict[str, Any]] = {}
        self.signals: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str]] = []
        self.ignored: set[str] = set()           # signals the container's PID 1 ignores
        self.fail: dict[str, str] = {}           # operation -> the runtime's words
        self.start_gate: threading.Event | None = None  # start waits for it when set

    def _op(self, op: str, cid: str) -> None:
        self.calls.append((op, cid))
        if op in self.fail:
            raise RuntimeFailed(f"fake failed while {op}: {self.fail[op]}")

    def global_args(self, log: Path | None = None) -> list[str]:
        return []

    def create(self, cid: str, bundle: Path, *, pid_file: Path, log: Path) -> None:
        self._op("create", cid)
        if cid in self.containers:
            raise RuntimeFailed(f"fake failed while creating: container {cid} already exists")
        self.containers[cid] = {"id": cid, "status": "created", "pid": 4242}

    def start(self, cid: str) -> None:
        self._op("start", cid)
        if self.start_gate is not None:
            self.start_gate.wait(5)
        if self.containers.get(cid, {}).get("status") != "created":
            raise RuntimeFailed("fake failed while starting: not created")
        self.containers[cid]["status"] = "running"

    def state(self, cid: str) -> dict[str, Any] | None:
        return dict(self.containers[cid]) if cid in self.containers else None

    def all_states(self) -> dict[str, dict[str, Any]]:
        return {cid: dict(st) for cid, st in self.containers.items()}

    def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> None:
        self._op("kill", cid)
        self.signals.append((cid, signal))
        st = self.containers.get(cid)
        if st is None or st["status"] == "stopped":
            raise RuntimeFailed("fake failed while sending a signal: No such process")
        if signal in self.ignored and signal != "KILL":
            return
        self.exit(cid, 128 + int(getattr(signalmod, "SIG" + signal)))

    def exit(self, cid: str, code: int) -> None:
        """The container's process ends with ``code``; its monitor writes the exit file."""
        from secpod.sandbox import state

        self.containers[cid].update(status="stopped", pid=0)
        state.exits_dir().mkdir(parents=True, exist_ok=True)
        (state.exits_dir() / cid).write_text(str(code))

    def delete(self, cid: str, *, force: bool = False) -> None:
        self.calls.append(("delete", cid))
        self.containers.pop(cid, None)

    def knows(self, cid: str) -> bool:
        return cid in self.containers

    def run_argv(self, log: Path) -> list[str]:
        return [self.binary, "run"]

    def exec_argv(self, process_file: Path) -> list[str]:
        return [self.binary, "exec", "--process", str(process_file)]

    def features(self) -> Features:
        return Features(name="fake", version="0", seccomp_actions=(), seccomp_flags=False,
                        seccomp_notify=False, oci_annotations=False, idmap_mounts=False,
                        additional_gids=False, source="the tests")

    def refuses(self, config: dict[str, Any]) -> list[str]:
        return []

    def precompile(self, config: dict[str, Any]) -> str | None:
        return None

    def unenforced(self, config: dict[str, Any]) -> list[str]:
        return []

    def error_words(self, log: Path) -> str:
        return ""


class FakeMonitors:
    """conmon and the foreground monitor, as the lifecycle uses them."""

    def __init__(self) -> None:
        self.foreground_code: int | RuntimeFailed = 0

    def detached(self, rt: Any, ctr: Any, *, exit_dir: Path, log_size_max: int) -> int:
        rt.create(ctr.id, ctr.bundle, pid_file=ctr.dir / "pid", log=ctr.dir / "runtime.log")
        return 4242

    def foreground(self, rt: Any, ctr: Any, *, interactive: bool, log_size_max: int) -> int:
        if isinstance(self.foreground_code, RuntimeFailed):
            raise self.foreground_code
        rt.create(ctr.id, ctr.bundle, pid_file=ctr.dir / "pid", log=ctr.dir / "runtime.log")
        rt.start(ctr.id)
        rt.exit(ctr.id, self.foreground_code)
        return self.foreground_code


class Clock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
