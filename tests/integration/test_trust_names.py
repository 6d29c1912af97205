"""The trust policy judges the name the user typed: ``run`` and ``verify`` agree.

One image with two names, each with its own policy: ``run busybox`` is judged
(and recorded) as ``docker.io/library/busybox:latest``, never as the image's
other name, exactly as ``verify busybox`` judges it.
"""

from __future__ import annotations

import json

from tests.conftest import User
from tests.integration.conftest import audit_records


def test_run_and_verify_judge_the_name_typed(user: User, busybox: str) -> None:
    # alpine:3 sorts before busybox:latest among the image's names.
    user.run("image", "tag", busybox, "alpine:3", check=True)
    user.run("trust", "set", "--type", "reject", "docker.io/library/alpine", check=True)
    user.run("trust", "set", "--type", "accept", "docker.io/library/busybox", check=True)
    user.run("trust", "set", "--type", "reject", "default", check=True)

    verified = json.loads(user.run("verify", "busybox", "--json", check=True).stdout)
    assert (verified["accepted"], verified["reference"], verified["scope"]) == (
        True, "docker.io/library/busybox:latest", "docker.io/library/busybox")
    ran = user.run("run", "--rm", "busybox", "echo", "ran")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "ran\n"
    create = [r for r in audit_records(user) if r["action"] == "container.create"][-1]
    assert create["image"]["ref"] == "docker.io/library/busybox:latest"  # type: ignore[index]
    assert create["trust"]["reference"] == "docker.io/library/busybox:latest"  # type: ignore[index]
    assert create["trust"]["scope"] == "docker.io/library/busybox"  # type: ignore[index]

    rejected = user.run("verify", "alpine:3")
    assert rejected.returncode == 1
    refused = user.run("run", "--rm", "alpine:3", "echo", "ran")
    assert refused.returncode == 125
    assert "the trust policy rejects docker.io/library/alpine:3" in refused.stderr
    record = audit_records(user)[-1]
    assert (record["action"], record["outcome"]) == ("container.run.refused", "refused")
    assert record["image"]["ref"] == "docker.io/library/alpine:3"  # type: ignore[index]
    assert record["trust"]["scope"] == "docker.io/library/alpine"  # type: ignore[index]


def test_a_digest_reference_is_judged_under_the_name_it_gives(user: User, busybox: str) -> None:
    user.run("image", "tag", busybox, "alpine:3", check=True)
    user.run("trust", "set", "--type", "reject", "docker.io/library/alpine", check=True)
    user.run("trust", "set", "--type", "accept", "docker.io/library/busybox", check=True)
    user.run("trust", "set", "--type", "reject", "default", check=True)
    digest = json.loads(user.run("image", "inspect", busybox, check=True).stdout)
    digest = digest[0]["Digest"]
    verified = json.loads(user.run("verify", f"busybox@{digest}", "--json", check=True).stdout)
    assert verified["reference"] == f"docker.io/library/busybox@{digest}"
    ran = user.run("run", "--rm", f"busybox@{digest}", "true")
    assert ran.returncode == 0, ran.stderr
