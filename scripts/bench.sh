#!/usr/bin/env bash
# Runs the runner benchmarks (bench/runner_bench.py) as the unprivileged user in
# the same arrangement as the tests: as root, a private mount namespace without
# the cgroup v2 mount. Prints a markdown table; results go into docs/BENCHMARKS.md
# by hand. Never part of `make test`.
#
#   scripts/bench.sh [--instructions]        bench/runner_bench.py
#   scripts/bench.sh runtimes [--runs N]     bench/runtimes.py: crun vs runc, same bundle
#   scripts/bench.sh strict [--pairs N] [--runs N]
#                                            bench/strict_path.py: strict vs podman vs crun,
#                                            alternated, with the load average
#   scripts/bench.sh cli                     bench/cli_bench.py: ps -a and inspect vs podman
#   scripts/bench.sh network [--runs N] [--starts N]
#                                            bench/network.py: -p throughput against
#                                            loopback and podman run -p, start, memory
#   scripts/bench.sh restart                 bench/restart_bench.py: a restarting monitor's memory
#   scripts/bench.sh pods                    bench/pod_bench.py: pod create + 2 members vs podman
#   scripts/bench.sh import                  bench/import_bench.py: import of a Debian minbase
#                                            image (mmdebstrap, as root here) vs umoci
#   scripts/bench.sh bundles [--runs N]      bench/bundle_verify.py: verify-bundle on the
#                                            sigstore conformance cases vs the sigstore PyPI
#                                            client (its own venv), offline (no network at all)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (it drops to the test user)" >&2; exit 2; }
script=runner_bench.py
if [ "${1:-}" = runtimes ]; then script=runtimes.py; shift; fi
if [ "${1:-}" = strict ]; then script=strict_path.py; shift; fi
if [ "${1:-}" = cli ]; then script=cli_bench.py; shift; fi
if [ "${1:-}" = network ]; then script=network.py; shift; fi
if [ "${1:-}" = restart ]; then script=restart_bench.py; shift; fi
if [ "${1:-}" = import ]; then script=import_bench.py; shift; fi
if [ "${1:-}" = pods ]; then script=pod_bench.py; shift; fi
if [ "${1:-}" = bundles ]; then script=bundle_verify.py; shift; fi
stage=$(bash "$here/scripts/test-env.sh" --setup-only)
# Measure secpod as a user installs it (a regular, byte-compiled install), not
# the editable install the tests use (its import finder costs ~15 ms a start).
venv="$stage/bench-venv"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q "$stage/main" >&2
chmod -R a+rX "$venv"
netns=()
if [ "$script" = bundle_verify.py ]; then
  # The peer: the sigstore PyPI client, pinned, in a venv of its own (never secpod's, never
  # the system's). PyPI is reached here only; the benchmark itself runs with no network.
  peer="$stage/sigstore-venv"
  sigstore_version=4.5.1
  if [ "$(cat "$peer/.stamp" 2>/dev/null)" != "$sigstore_version" ]; then
    rm -rf "$peer"
    /usr/bin/python3 -m venv "$peer"
    "$peer/bin/pip" install -q "sigstore==$sigstore_version" >&2
    echo "$sigstore_version" > "$peer/.stamp"
  fi
  chmod -R a+rX "$peer"
  netns=(-n)
  set -- --sigstore "$peer/bin/python" "$@"
fi
user=${SECPOD_TEST_USER:-secpodtest}
# lowercase: podman names an image pulled from oci:PATH after the path
work=/var/tmp/secpod-bench-$$
rm -rf "$work"; mkdir "$work"
chmod 755 "$work"; chown "$user:" "$work"
# The store holds files of the user's subordinate ids: removed as root.
trap 'rm -rf "$work"' EXIT
if [ "$script" = import_bench.py ]; then
  # A real distribution's root filesystem, from Debian's archive.
  mmdebstrap --variant=minbase --format=tar bookworm "$work/debian.tar" >&2
  chown "$user:" "$work/debian.tar"
  set -- "$work/debian.tar" "$@"
fi
# Podman's slirp4netns needs a tun device the user can open; this host has no udev, so
# /dev/net/tun is root's 0600. For the network bench only, and in its private mount
# namespace only, a tmpfs on /dev/net holds a 0666 node of the same device (10, 200):
# the host's /dev is never changed.
tun=0
if [ "$script" = network.py ]; then tun=1; fi
unshare -m "${netns[@]}" --propagation private -- bash -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  if [ "$5" = 1 ]; then
    mount -t tmpfs -o mode=0755,size=64k tmpfs /dev/net
    mknod -m 0666 /dev/net/tun c 10 200
  fi
  setpriv --reuid="$1" --regid="$1" --init-groups --reset-env \
    env HOME="$2" PATH="$3/bench-venv/bin:/usr/bin:/bin" XDG_RUNTIME_DIR="$2/run" \
    XDG_DATA_HOME="$2/data" XDG_CONFIG_HOME="$2/config" COSIGN_PASSWORD=bench \
    "$3/bench-venv/bin/python" "$3/main/bench/$4" "${@:6}"
' bench "$user" "$work" "$stage" "$script" "$tun" "$@"
