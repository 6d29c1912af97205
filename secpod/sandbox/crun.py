"""The crun driver: every call secpod makes to the OCI runtime goes through here.

crun keeps its state under the user's runtime dir (``--root``). With no
cgroup delegation (this includes the hybrid layout), crun runs with
``--cgroup-manager=disabled`` so that it does not try to create cgroups it
cannot write; the bundle then carries no resource limits (see policies).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from secpod import paths
from secpod._record import record
from secpod.errors import HostError, RuntimeFailed

TYPE_CHECKING = False  # typing is for mypy only: not imported at run time
if TYPE_CHECKING:
    from typing import Any


def crun_path() -> str:
    path = shutil.which("crun")
    if path is None:
        raise HostError("crun not found", hint="apt-get install crun")
    return path


# eq=False: instances are never compared; spares the generated __eq__ and
# __hash__ that every start-up would compile.
@record(frozen=True, eq=False)
class Runtime:
    """crun with this user's state root and the cgroup manager this host allows."""

    binary: str
    root: Path
    cgroup_manager: str = "disabled"

    @classmethod
    def default(cls, *, can_limit_resources: bool = False) -> Runtime:
        root = paths.ensure_private_dir(paths.runtime_dir()) / "crun"
        root.mkdir(mode=0o700, exist_ok=True)
        return cls(crun_path(), root, "cgroupfs" if can_limit_resources else "disabled")

    @property
    def global_args(self) -> list[str]:
        return [f"--root={self.root}", f"--cgroup-manager={self.cgroup_manager}"]

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *self.global_args, *args]

    def call(self, *args: str, what: str, timeout: float = 60) -> str:
        """Run a crun subcommand; raise RuntimeFailed with crun's own words on failure."""
        try:
            proc = subprocess.run(
                self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise RuntimeFailed(
                f"crun {args[0]} did not answer within {timeout:.0f}s while {what}",
                hint="secpod ps -a; secpod rm -f the container",
            ) from e
        if proc.returncode != 0:
            raise RuntimeFailed(
                f"crun failed while {what}: {_crun_words(proc.stderr)}",
                hint="secpod doctor checks what this host allows",
            )
        return proc.stdout

    def state(self, cid: str) -> dict[str, Any] | None:
        """crun's state of the container, or None when crun does not know it."""
        proc = subprocess.run(
            self.argv("state", cid), capture_output=True, text=True, check=False, timeout=30
        )
        if proc.returncode != 0:
            return None
        try:
            data: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return None
        return data

    def list(self) -> dict[str, dict[str, Any]]:
        """All containers crun knows in this state root, by id."""
        if not any(self.root.iterdir()):
            return {}
        out = self.call("list", "--format=json", what="listing containers", timeout=30)
        try:
            items = json.loads(out or "[]")
        except json.JSONDecodeError as e:
            raise RuntimeFailed(f"crun list printed something that is not JSON: {e}") from e
        return {item["id"]: item for item in items or []}

    def kill(self, cid: str, signal: str, *, all_processes: bool = False) -> None:
        args = ["kill", *(["--all"] if all_processes else []), cid, signal]
        self.call(*args, what=f"sending {signal}")

    def knows(self, cid: str) -> bool:
        """Whether crun has state for the container (its folder under the state root)."""
        return (self.root / cid).exists()

    def delete(self, cid: str, *, force: bool = False) -> None:
        """Forget the container; no error when crun does not know it."""
        subprocess.run(
            self.argv("delete", *(["--force"] if force else []), cid),
            capture_output=True,
            check=False,
            timeout=60,
        )


def _crun_words(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"
