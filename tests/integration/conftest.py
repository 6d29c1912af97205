"""Fixtures for runner tests: a signed busybox image that strict accepts, a registry,
a gpg key, and a private /etc/secpod (bind-mounted in the suite's mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WORK, User
from tests.integration.registry_server import Registry, start_registry

PASSWORD = "correct horse battery staple"


@pytest.fixture
def signed_busybox(user: User, busybox: str) -> str:
    """busybox:latest, signed with a fresh cosign key, and a trust policy requiring that key."""
    env = dict(user.env, COSIGN_PASSWORD=PASSWORD)
    user.env = env
    user.run("key", "generate", "--output-key-prefix", str(user.home / "release"), check=True)
    user.run("sign", busybox, "--key", str(user.home / "release.key"), check=True)
    user.run("trust", "set", "--type", "sigstoreSigned", "--pubkeysfile",
             str(user.home / "release.pub"), "docker.io/library/busybox", check=True)
    user.run("trust", "set", "--type", "reject", "default", check=True)
    return busybox


def audit_records(user: User) -> list[dict[str, object]]:
    path = user.home / "data" / "secpod" / "audit" / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def validate_runtime_config(config: dict[str, Any], shared: Path) -> None:
    """Validate an OCI runtime config against ../shared/oci-schemas/runtime-spec."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schemas = shared / "oci-schemas" / "runtime-spec"
    registry: Registry = Registry()
    for f in schemas.glob("*.json"):
        registry = registry.with_resource(f.name, Resource.from_contents(
            json.loads(f.read_text()), default_specification=DRAFT7))
    schema = json.loads((schemas / "config-schema.json").read_text())
    jsonschema.Draft7Validator(schema, registry=registry).validate(config)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """Debian's docker-registry on loopback, with its own storage folder, per test module."""
    WORK.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="registry-", dir=WORK))
    reg = start_registry(folder)
    yield reg
    reg.stop()
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture
def gpg_user(user: User) -> Iterator[tuple[User, str]]:
    """The user with a throwaway GNUPGHOME holding a fresh passphrase-less key."""
    home = user.home / "gnupg"
    home.mkdir(mode=0o700)
    shutil.chown(home, user.uid, user.gid)
    user.env["GNUPGHOME"] = str(home)
    user.sh(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
             "secpod test <signer@example.com>", "default", "default", "never"], check=True)
    listing = user.sh(["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True)
    fpr = next(line.split(":")[9] for line in listing.stdout.splitlines()
               if line.startswith("fpr:"))
    yield user, fpr
    user.sh(["gpgconf", "--kill", "all"])


def _private_mount_ns() -> None:
    # scripts/test-env.sh execs `unshare -m` into pytest: our parent is still outside.
    mine = os.readlink("/proc/self/ns/mnt")
    others = []
    for pid in (1, os.getppid()):
        try:
            others.append(os.readlink(f"/proc/{pid}/ns/mnt"))
        except OSError:
            continue
    if not others or mine in others:
        pytest.fail("these tests bind-mount over /etc: run them through scripts/test-env.sh, "
                    "which gives the suite a private mount namespace")


@pytest.fixture
def bind_over() -> Iterator[Callable[[Path, Path], None]]:
    """Bind-mount a folder over another (in this private namespace); undone afterwards."""
    _private_mount_ns()
    done: list[tuple[Path, bool]] = []

    def bind(src: Path, target: Path) -> None:
        created = not target.exists()
        if created:
            target.mkdir(mode=0o755)
        subprocess.run(["mount", "--bind", str(src), str(target)], check=True)
        done.append((target, created))

    yield bind
    for target, created in reversed(done):
        subprocess.run(["umount", str(target)], check=True)
        if created:
            target.rmdir()


@pytest.fixture
def admin(bind_over: Callable[[Path, Path], None]) -> Iterator[Path]:
    """An empty, root-owned /etc/secpod for this test; returns the folder to write into."""
    WORK.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="etc-secpod-", dir=WORK))
    folder.chmod(0o755)
    bind_over(folder, Path("/etc/secpod"))
    yield Path("/etc/secpod")
    shutil.rmtree(folder, ignore_errors=True)


def write_policy(text: str, mode: int = 0o644) -> Path:
    """Write /etc/secpod/policy.toml (inside the `admin` fixture's private folder)."""
    p = Path("/etc/secpod/policy.toml")
    p.write_text(text)
    p.chmod(mode)
    return p
