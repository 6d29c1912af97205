"""Fixtures for runner tests: a signed busybox image that strict accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
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
