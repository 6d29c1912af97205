"""Install secpod's AppArmor profiles into the kernel: the one thing an administrator runs as root.

``secpod system install-apparmor`` writes one profile per built-in and
administrator profile that uses AppArmor (``[apparmor] enforce`` not ``off``),
checks each with ``apparmor_parser -Q -K``, and loads them with
``apparmor_parser -r``. Users' own profiles are never installed: what the kernel
enforces is the administrator's choice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from secpod._files import write_atomic
from secpod._record import record
from secpod.errors import Error, HostError, ProfileError, Refused


@record(frozen=True)
class Installed:
    name: str       # the AppArmor profile name
    path: Path
    loaded: bool


def parser() -> str:
    found = shutil.which("apparmor_parser") or (
        "/usr/sbin/apparmor_parser" if os.path.exists("/usr/sbin/apparmor_parser") else None)
    if not found:
        raise HostError("apparmor_parser is missing", hint="apt-get install apparmor")
    return found


def check(text: str, name: str) -> None:
    """Compile an AppArmor profile without loading it (``-Q -K``). Raises ProfileError."""
    proc = subprocess.run([parser(), "-Q", "-K"], input=text, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise ProfileError(f"apparmor_parser rejects the profile {name}: {last}",
                           hint="report this: secpod wrote a profile the parser does not accept")


def install(folder: Path, *, load: bool = True) -> list[Installed]:
    """Write (and with ``load``, load) the AppArmor profiles. Root only.

    Raises Refused when not root, HostError when the kernel has no AppArmor (with
    ``load``) or the parser is missing or the folder cannot be written, ProfileError if a
    profile does not compile, Error if a file cannot be written.
    """
    from secpod.policies.export import apparmor
    from secpod.policies.profile import available
    from secpod.policies.profile import load as load_profile

    if os.geteuid() != 0:
        raise Refused("installing AppArmor profiles needs root",
                      hint="run `sudo secpod system install-apparmor` once, as the administrator")
    if load and not _kernel_has_apparmor():
        raise HostError("this kernel has no AppArmor enabled: profiles cannot be loaded",
                        hint="boot with apparmor=1 security=apparmor, or use --no-load to only "
                             "write the files")
    texts: dict[str, str] = {}
    for name, kind, _ in available():
        if kind == "user":
            continue
        try:
            prof = load_profile(name)
        except Error as e:
            raise ProfileError(f"cannot install the AppArmor profile of {name}: {e.message}",
                               hint=e.hint) from e
        if prof.apparmor_enforce == "off":
            continue
        text = apparmor(prof)
        if texts.get(prof.apparmor_profile, text) != text:
            raise ProfileError(
                f"two secpod profiles want different AppArmor profiles named "
                f"{prof.apparmor_profile}", hint="give each its own [apparmor] profile name")
        check(text, prof.apparmor_profile)
        texts[prof.apparmor_profile] = text
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HostError(f"cannot make {folder}: {e.strerror}",
                        hint="give a folder root may write to with --dir") from e
    out = []
    for aa_name, text in sorted(texts.items()):
        path = folder / aa_name
        write_atomic(path, text, mode=0o644)
        loaded = False
        if load:
            proc = subprocess.run([parser(), "-r", "-W", str(path)], capture_output=True,
                                  text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise HostError(f"apparmor_parser could not load {path}: {proc.stderr.strip()}",
                                hint="check `aa-status`, and the kernel log")
            loaded = True
        out.append(Installed(aa_name, path, loaded))
    return out


def _kernel_has_apparmor() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False
