"""`secpod verify-bundle` against the `sigstore` PyPI client, in one run (issue 17).

On ../shared/conformance/sigstore-bundles, offline, with the same bundles and trusted roots:

1. the key-signed cases, secpod only (sigstore-python's CLI verifies certificate identities,
   it has no key option): goal under 150 ms a whole process;
2. every certificate-based case, secpod and ``python -m sigstore --trust-config CFG verify
   identity --offline --bundle B --cert-identity ID --cert-oidc-issuer URL ARTIFACT`` (the
   client trust config holds the case's trusted root, so no TUF metadata is read or
   fetched): each verdict next to the expected one (the artifact by path and as a
   ``sha256:`` digest), then both timed with hyperfine in one invocation per case (path).
   Goal: secpod at least 3x faster, and right on every case sigstore-python gets right.

Prints a markdown table of medians, the ratio sigstore/secpod per case, its geometric mean
and the load average before and after. Run through ``scripts/bench.sh bundles [--runs N]``
(as root: it installs the pinned sigstore into its own venv, then runs this as the test
user in a network namespace with no network, against a regular install of secpod).

    python bench/bundle_verify.py --sigstore PYTHON [--runs 10] [--user secpodtest]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import as_user  # bench/ is sys.path[0] when a script runs

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "sigstore-bundles"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
SIGNING_CONFIG = "application/vnd.dev.sigstore.signingconfig.v0.2+json"  # unused by verify
GOAL_KEY_MS = 150.0
GOAL_RATIO = 3.0


class Case:
    def __init__(self, folder: Path, work: Path, sigstore_py: str) -> None:
        self.name = folder.name
        self.expected = "reject" if self.name.endswith("_fail") else "accept"
        self.artifact = folder / "artifact" if (folder / "artifact").exists() else CASES / "a.txt"
        self.digest = "sha256:" + hashlib.sha256(self.artifact.read_bytes()).hexdigest()
        root = folder / "trusted_root.json"
        bundle = str(folder / "bundle.sigstore.json")
        self.key = (folder / "key.pub").exists()
        ident = _read(folder / "identity") or IDENTITY
        iss = _read(folder / "issuer") or ISSUER
        self.secpod = ["verify-bundle", "--bundle", bundle]
        if self.key:
            self.secpod += ["--key", str(folder / "key.pub")]
        else:
            self.secpod += ["--certificate-identity", ident, "--certificate-oidc-issuer", iss]
        if root.exists():
            self.secpod += ["--trusted-root", str(root)]
        self.sigstore: list[str] | None = None
        if not self.key:
            # The same trusted root secpod is given (or, as for secpod, the public-good one).
            raw = (root if root.exists() else CASES / "production-trusted_root.json").read_text()
            config = work / f"{self.name}.trust-config.json"
            # A malformed root stays malformed: spliced in as text, never re-encoded.
            head = json.dumps({"mediaType": TRUST_CONFIG,
                               "signingConfig": {"mediaType": SIGNING_CONFIG}})
            config.write_text(head[:-1] + ', "trustedRoot": ' + raw + "}")
            self.sigstore = [sigstore_py, "-m", "sigstore", "--trust-config", str(config),
                             "verify", "identity", "--offline", "--bundle", bundle,
                             "--cert-identity", ident, "--cert-oidc-issuer", iss]


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _verdict(argv: list[str], env: dict[str, str]) -> tuple[str, str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    why = " ".join(proc.stderr.split())
    return ("accept" if proc.returncode == 0 else "reject"), why[-300:]


def _timed(commands: dict[str, list[str]], runs: int, out: Path) -> dict[str, float]:
    """Median seconds of each command, all in one hyperfine invocation (no shell; a
    rejection's non-zero exit is the expected outcome, so failures are not errors)."""
    argv = ["hyperfine", "-N", "-i", "-w", "2", "-r", str(runs), "--export-json", str(out)]
    for name, cmd in commands.items():
        argv += ["-n", name, " ".join(cmd)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {r["command"]: float(r["median"]) for r in json.loads(out.read_text())["results"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="hyperfine runs per command")
    ap.add_argument("--sigstore", required=True, help="the python of a venv with sigstore")
    ap.add_argument("--user", default="secpodtest" if os.geteuid() == 0 else None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bundle-bench-"))
    os.chmod(work, 0o755)  # noqa: S103 (the test user reads the trust configs)
    env = {"HOME": str(work), "XDG_DATA_HOME": str(work / "data"),
           "XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config"),
           "XDG_CACHE_HOME": str(work / "cache"), "PATH": "/usr/bin:/bin",
           "COLUMNS": "1000"}  # sigstore's error lines unwrapped
    secpod = str(Path(sys.executable).parent / "secpod")
    version = subprocess.run([args.sigstore, "-m", "sigstore", "--version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    cases = [Case(p, work, args.sigstore) for p in sorted(CASES.iterdir()) if p.is_dir()]
    if args.user:
        for p in [work, *work.iterdir()]:
            shutil.chown(p, args.user)

    def cmd(argv: list[str]) -> list[str]:
        return as_user(args.user, argv, env)

    load_before = _load()
    rows = []
    for c in cases:
        ours = {mode: _verdict(cmd([secpod, *c.secpod, a]), env)
                for mode, a in (("path", str(c.artifact)), ("digest", c.digest))}
        theirs = None if c.sigstore is None else {
            mode: _verdict(cmd([*c.sigstore, a]), env)
            for mode, a in (("path", str(c.artifact)), ("digest", c.digest))}
        commands = {"secpod": cmd([secpod, *c.secpod, str(c.artifact)])}
        if c.sigstore is not None:
            commands["sigstore"] = cmd([*c.sigstore, str(c.artifact)])
        # the key cases (secpod alone, against an absolute goal) get more runs
        t = _timed(commands, args.runs * (3 if c.key else 1), work / f"{c.name}.hf.json")
        rows.append((c, ours, theirs, t))
    load_after = _load()

    def v(verdicts: dict[str, tuple[str, str]] | None, expected: str) -> str:
        if verdicts is None:
            return "cannot be asked (no key option)"
        p, d = verdicts["path"][0], verdicts["digest"][0]
        right = p == expected and d == expected
        return (p if p == d else f"{p} (path) / {d} (digest)") + ("" if right else " **WRONG**")

    print(f"secpod verify-bundle vs {version}, hyperfine -N, {args.runs} runs, medians; "
          f"load average before {load_before}, after {load_after}\n")
    print("| case | expected | secpod | sigstore-python | secpod ms | sigstore ms | "
          "sigstore / secpod |")
    print("|---|---|---|---|---:|---:|---:|")
    ratios, key_ms = [], []
    for c, ours, theirs, t in rows:
        s_ms = t["secpod"] * 1000
        if c.key:
            key_ms.append((c.name, s_ms))
        theirs_ms = f"{t['sigstore'] * 1000:.1f}" if "sigstore" in t else "—"
        ratio = ""
        if "sigstore" in t:
            ratios.append(t["sigstore"] / t["secpod"])
            ratio = f"{ratios[-1]:.2f}"
        print(f"| {c.name} | {c.expected} | {v(ours, c.expected)} | {v(theirs, c.expected)} | "
              f"{s_ms:.1f} | {theirs_ms} | {ratio} |")
    cert = [r for r in rows if r[2] is not None]
    ours_right = [r for r in rows if all(x[0] == r[0].expected for x in r[1].values())]
    theirs_right = [r for r in cert if all(x[0] == r[0].expected for x in r[2].values())]
    missed = [r[0].name for r in theirs_right if r not in ours_right]
    geo = math.exp(statistics.fmean(math.log(x) for x in ratios)) if ratios else float("nan")
    print()
    for name, ms in key_ms:
        print(f"- key-signed `{name}`: {ms:.1f} ms, goal < {GOAL_KEY_MS:.0f} ms: "
              f"{'met' if ms < GOAL_KEY_MS else 'NOT met'}")
    print(f"- sigstore / secpod over {len(ratios)} certificate-based cases: geometric mean "
          f"{geo:.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}; goal ≥ {GOAL_RATIO:.0f}: "
          f"{'met' if geo >= GOAL_RATIO else 'NOT met'} (on the geometric mean), "
          f"{sum(r >= GOAL_RATIO for r in ratios)} of {len(ratios)} cases at or above it")
    print(f"- verdicts right (path and digest): secpod {len(ours_right)} of {len(rows)}, "
          f"sigstore-python {len(theirs_right)} of {len(cert)} it can be asked; cases "
          f"sigstore-python gets right and secpod does not: {', '.join(missed) or 'none'}")
    for c, _, theirs, _ in cert:
        for mode, (got, why) in (theirs or {}).items():
            if got != c.expected:
                print(f"- sigstore-python on {c.name} ({mode}): {got}: {why}")
    for c, ours, _, _ in rows:
        for mode, (got, why) in ours.items():
            if got != c.expected:
                print(f"- secpod on {c.name} ({mode}): {got}: {why}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
