"""Signature verification benchmarks (run by hand, never by the test pass).

1. Throughput in one process: sigstore (ECDSA P-256 key) signatures verified
   per second with :func:`secpod.signing.verify_attachment`, and GPG simple
   signings per second through the ``signedBy`` requirement (a throwaway
   GNUPGHOME and ``gpg`` per check, as secpod always does).
2. One whole process against another on the same GPG signature:
   ``secpod verify dir:D --identity REF --policy P`` versus
   ``skopeo standalone-verify MANIFEST REF FPR SIG``.

Prints a markdown table of medians. As root, the processes run as
``--user`` (default secpodtest), since secpod refuses root.

    python bench/signing_verify.py [--runs 15] [--sigs 300] [--user secpodtest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import as_user  # bench/ is sys.path[0] when a script runs
from cryptography.hazmat.primitives.asymmetric import ec

from secpod.images.reference import parse
from secpod.signing import keys, sigstore
from secpod.signing.identity import MatchRepoDigestOrExact
from secpod.signing.requirements import GPGSignedBy, ImageUnderTest

REF = "registry.example.com/bench/app:1.0"
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"digest": "sha256:" + "0" * 64, "size": 2}, "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def _timed(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        out.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"{argv[-6:]} failed: {proc.stderr.decode()[-500:]}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="process runs per tool (median)")
    ap.add_argument("--sigs", type=int, default=300, help="in-process sigstore verifications")
    ap.add_argument("--gpg-sigs", type=int, default=30, help="in-process GPG verifications")
    ap.add_argument("--user", default="secpodtest" if os.geteuid() == 0 else None)
    args = ap.parse_args()
    # An installed secpod has its bytecode compiled; a checkout read by another user may not.
    import secpod

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(secpod.__file__).parent)],
                   check=False, capture_output=True)

    # 1a. sigstore throughput
    key = ec.generate_private_key(ec.SECP256R1())
    att = sigstore.parse_attachment(sigstore.make_signature(key, REF, DIGEST))
    root = sigstore.SigstoreTrustRoot(public_keys=(keys.public_key_of(key),))
    ident = MatchRepoDigestOrExact()
    intended = parse(REF)
    t = time.perf_counter()
    for _ in range(args.sigs):
        sigstore.verify_attachment(att, root, manifest=MANIFEST, intended=intended, identity=ident)
    sigstore_rate = args.sigs / (time.perf_counter() - t)

    work = Path(tempfile.mkdtemp(prefix="secpod-bench-", dir="/var/tmp"))
    try:
        work.chmod(0o755)
        home = work / "home"
        home.mkdir()
        gnupg = home / "gnupg"
        gnupg.mkdir(mode=0o700)
        if args.user:
            pw = pwd.getpwnam(args.user)
            shutil.chown(home, pw.pw_uid, pw.pw_gid)
            shutil.chown(gnupg, pw.pw_uid, pw.pw_gid)
        env = {"HOME": str(home), "GNUPGHOME": str(gnupg), "PATH": os.environ["PATH"],
               "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_RUNTIME_DIR": str(home), "LANG": "C.UTF-8"}

        def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(as_user(args.user, argv, env), capture_output=True,
                                  check=True, cwd=home)

        run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
             "bench <bench@example.com>", "default", "default", "never"])
        colons = run(["gpg", "--batch", "--with-colons", "--list-secret-keys"]).stdout.decode()
        fpr = next(ln.split(":")[9] for ln in colons.splitlines() if ln.startswith("fpr:"))
        layout = home / "image"
        layout.mkdir()
        (layout / "manifest.json").write_bytes(MANIFEST)
        layout.chmod(0o755)
        run(["skopeo", "standalone-sign", str(layout / "manifest.json"), REF, fpr,
             "--output", str(home / "signature")])
        shutil.copy(home / "signature", layout / "signature-1")
        pubring = home / "signer.gpg"
        run(["gpg", "--batch", "--export", "--output", str(pubring), fpr])
        policy = home / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys",
                                                   "keyPath": str(pubring)}]}))
        subprocess.run(["chmod", "-R", "a+rX", str(home)], check=True)

        # 1b. GPG throughput in-process (gpg subprocesses included)
        req = GPGSignedBy(keyrings=(pubring.read_bytes(),), identity=ident)
        image = ImageUnderTest(reference=intended, manifest=MANIFEST,
                               signatures=((layout / "signature-1").read_bytes(),))
        t = time.perf_counter()
        for _ in range(args.gpg_sigs):
            req.check(image)
        gpg_rate = args.gpg_sigs / (time.perf_counter() - t)

        # 2. whole processes on the same GPG signature
        secpod = shutil.which("secpod") or str(Path(sys.executable).parent / "secpod")
        ours = _timed(as_user(args.user, [secpod, "verify", f"dir:{layout}", "--identity", REF,
                                           "--policy", str(policy)], env), args.runs)
        theirs = _timed(as_user(args.user, ["skopeo", "standalone-verify",
                                              str(layout / "manifest.json"), REF, fpr,
                                              str(layout / "signature-1")], env), args.runs)
        run(["gpgconf", "--kill", "all"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mo, mt = statistics.median(ours), statistics.median(theirs)
    print("| measurement | value |")
    print("|---|---|")
    print(f"| sigstore (ECDSA P-256) verifications per second, in process | {sigstore_rate:.0f} |")
    print(f"| GPG signedBy verifications per second, in process (gpg per check) | "
          f"{gpg_rate:.1f} |")
    print(f"| `secpod verify` (GPG, one process), median of {args.runs} | {mo * 1000:.0f} ms |")
    print(f"| `skopeo standalone-verify` (same signature), median of {args.runs} | "
          f"{mt * 1000:.0f} ms |")
    print(f"| ratio secpod / skopeo | {mo / mt:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
