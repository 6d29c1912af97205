"""`secpod verify-bundle` for a key-signed bundle, timed with hyperfine (run by hand).

Uses sigstore-conformance's managed-key-happy-path case from ../shared. As root, the
command runs as ``--user`` (default secpodtest), since secpod refuses root.

    python bench/bundle_verify.py [--runs 30] [--user secpodtest]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import as_user  # bench/ is sys.path[0] when a script runs

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "sigstore-bundles"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--user", default="secpodtest" if os.geteuid() == 0 else None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bundle-bench-"))
    os.chmod(work, 0o755)  # noqa: S103 (the test user reads the copied case)
    case = CASES / "managed-key-happy-path"
    for src in (case / "bundle.sigstore.json", case / "key.pub", CASES / "a.txt"):
        shutil.copy(src, work / src.name)
    secpod = str(Path(sys.executable).parent / "secpod")
    env = {"HOME": str(work), "XDG_DATA_HOME": str(work / "data"),
           "XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config"),
           "PATH": "/usr/bin:/bin"}
    if args.user:
        shutil.chown(work, args.user)
    cmd = as_user(args.user, [secpod, "verify-bundle", "--bundle",
                              str(work / "bundle.sigstore.json"), "--key", str(work / "key.pub"),
                              str(work / "a.txt")], env)
    subprocess.run(cmd, check=True)
    subprocess.run(["hyperfine", "-N", "--warmup", "3", "--runs", str(args.runs),
                    "--export-markdown", str(work / "result.md"),
                    " ".join(cmd)], check=True)
    print((work / "result.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
