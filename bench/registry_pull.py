"""Registry pull benchmark (run by hand, never by the test pass).

Builds a ~100 MB image of incompressible random data in a few gzip layers,
copies it into Debian's ``docker-registry`` on loopback, then times, over N
runs each, into a fresh destination every time (for secpod: an empty image store
of a user whose audit log already exists, as in real use):

- ``secpod pull --tls-verify=false 127.0.0.1:PORT/bench/big:1`` (download,
  verify, store, and unpack into a root filesystem), and the part of it until
  the last layer is verified and stored (taken from the time its progress
  line reaches stderr: everything after is unpacking);
- ``skopeo copy --src-tls-verify=false docker://... oci:DIR`` (download,
  verify, store; skopeo does not unpack).

Prints medians and ratios as a markdown table. As root, secpod runs as
``--user`` (default secpodtest), since secpod refuses root.

    python bench/registry_pull.py [--runs 7] [--mb 100] [--layers 4] [--user secpodtest]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import as_user, free_port  # bench/ is sys.path[0] when a script runs


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest, len(data)


def build_layout(layout: Path, total_mb: int, layers: int) -> str:
    """An OCI layout of ``layers`` gzip layers of random data; returns the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    per = total_mb * 1_000_000 // layers
    descs, diff_ids = [], []
    for i in range(layers):
        plain = io.BytesIO()
        with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data/part{i}.bin")
            info.size = per
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(os.urandom(per)))
        raw = plain.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        digest, size = _blob(layout, gzip.compress(raw, compresslevel=1, mtime=0))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": digest, "size": size})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdigest, csize = _blob(layout, config)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cdigest, "size": csize},
                           "layers": descs}).encode()
    mdigest, msize = _blob(layout, manifest)
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
            "size": msize}]}))
    return mdigest


def _timed_pull(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(whole process, until the last 'verified' progress line) in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    assert proc.stderr is not None
    verified = None
    lines = []
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        lines.append(line)
        if " verified" in line:
            verified = time.perf_counter() - t0
    proc.wait()
    total = time.perf_counter() - t0
    if proc.returncode != 0 or verified is None:
        sys.exit(f"secpod pull failed ({proc.returncode}): {''.join(lines)[-800:]}")
    return total, verified


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{argv[:3]} failed: {proc.stderr.decode()[-800:]}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--mb", type=int, default=100, help="image size in MB")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--user", default="secpodtest" if os.geteuid() == 0 else None)
    args = ap.parse_args()
    import secpod

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(secpod.__file__).parent)],
                   check=False, capture_output=True)
    secpod_bin = shutil.which("secpod") or str(Path(sys.executable).parent / "secpod")
    work = Path(tempfile.mkdtemp(prefix="secpod-bench-registry-", dir="/var/tmp"))
    registry = None
    try:
        work.chmod(0o755)
        port = free_port()
        (work / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {work / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
        registry = subprocess.Popen(["/usr/bin/docker-registry", "serve",
                                     str(work / "config.yml")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)  # noqa: S310
                break
            except OSError:
                time.sleep(0.05)
        layout = work / "layout"
        digest = build_layout(layout, args.mb, args.layers)
        ref = f"127.0.0.1:{port}/bench/big:1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}",
                        f"docker://{ref}"], check=True)
        size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        home = work / "home"
        home.mkdir()
        if args.user:
            pw = pwd.getpwnam(args.user)
            shutil.chown(home, pw.pw_uid, pw.pw_gid)
        env = {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
               "XDG_CONFIG_HOME": str(home / "config"), "XDG_RUNTIME_DIR": str(home)}
        secpod_total, secpod_fetch, skopeo = [], [], []
        # One user, as in real use: the audit log and its key persist across pulls
        # (the first pull of a new user also makes the log's key); each timed pull
        # goes into an empty image store. One untimed pull of each tool first.
        data = home / "data"
        argv = as_user(args.user, [secpod_bin, "pull", "--tls-verify=false", ref],
                        {**env, "XDG_DATA_HOME": str(data)})
        stores = [str(data / "secpod" / "images"), str(data / "secpod" / "signatures")]
        _timed_pull(argv, home)
        subprocess.run(["rm", "-rf", *stores], check=True)
        _timed(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                f"oci:{work / 'oci-warm'}"])
        shutil.rmtree(work / "oci-warm")
        for i in range(args.runs):
            total, fetched = _timed_pull(argv, home)
            secpod_total.append(total)
            secpod_fetch.append(fetched)
            subprocess.run(["rm", "-rf", *stores], check=True)
            dest = work / f"oci{i}"
            skopeo.append(_timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                  f"docker://{ref}", f"oci:{dest}"]))
            shutil.rmtree(dest)
        mb = size / 1e6
        st, sf, sk = (statistics.median(x) for x in (secpod_total, secpod_fetch, skopeo))
        print(f"Pull of a {mb:.0f} MB image ({args.layers} gzip layers of random data, "
              f"manifest {digest[:19]}) from docker-registry 2.8 on loopback; median of "
              f"{args.runs} runs, fresh destination each run; {os.cpu_count()} CPUs.\n")
        print("| what | median (s) | MB/s | vs skopeo |")
        print("|---|---|---|---|")
        print(f"| `skopeo copy docker://… oci:DIR` (fetch + verify + store) | {sk:.2f} | "
              f"{mb / sk:.0f} | 1.00 |")
        print(f"| `secpod pull`, until the last layer is verified and stored | {sf:.2f} | "
              f"{mb / sf:.0f} | {sf / sk:.2f} |")
        print(f"| `secpod pull`, whole (also unpacks the root filesystem) | {st:.2f} | "
              f"{mb / st:.0f} | {st / sk:.2f} |")
        return 0
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
