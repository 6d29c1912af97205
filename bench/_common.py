"""What the benchmark scripts share (they run as root and time secpod as a test user)."""

from __future__ import annotations

import pwd


def as_user(user: str | None, argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` with exactly ``env``, as ``user`` (through setpriv) when one is given."""
    envs = [f"{k}={v}" for k, v in sorted(env.items())]
    if user is None:
        return ["env", "-i", *envs, *argv]
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
            "--reset-env", "env", "-i", *envs, *argv]
