#!/usr/bin/env bash
# Sets up everything the suite needs on a fresh Debian 12 machine, as root,
# then runs the suite as root inside a private mount namespace; the tests run
# secpod itself as the unprivileged user $SECPOD_TEST_USER against real crun.
#
#   scripts/test-env.sh [PYTEST ARGS...]      (what `make test` and .ci/run call)
#   scripts/test-env.sh --setup-only          (install and stage, run nothing)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
stage=${SECPOD_STAGE:-/var/tmp/secpod-ci}
user=${SECPOD_TEST_USER:-secpodtest}
user2=${SECPOD_TEST_USER2:-secpodtest2}

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test-env.sh must run as root: it installs packages, makes the test users" >&2
  echo "and a private mount namespace; the tests themselves run secpod unprivileged." >&2
  exit 2
fi

apt_packages=(git make crun runc conmon uidmap busybox-static skopeo umoci podman docker-registry
  secilc apparmor python3-seccomp python3-selinux python3-venv python3-dev python3-yaml gnupg gpgconf zstd mmdebstrap
  libpam-modules python3-pam apache2-utils chromium gcc libc6-dev util-linux procps hyperfine valgrind openssl time
  strace catatonit systemd passt nftables slirp4netns)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}" >&2
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# The unprivileged users the suite runs secpod as, each with its own id ranges.
make_user() {
  local name=$1 start=$2
  if ! id "$name" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$name"
  fi
  grep -q "^$name:" /etc/subuid || usermod --add-subuids "$start-$((start + 65535))" "$name"
  grep -q "^$name:" /etc/subgid || usermod --add-subgids "$start-$((start + 65535))" "$name"
}
make_user "$user" 200000
make_user "$user2" 300000
# and one with no subordinate ranges, to prove secpod says what is missing
# (useradd gives new users ranges by default: SUB_UID_COUNT=0 stops it).
id secpodnoids >/dev/null 2>&1 || useradd --create-home --shell /bin/bash \
  -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 secpodnoids
sed -i '/^secpodnoids:/d' /etc/subuid /etc/subgid

# Stage the checkout and ../shared where the test users can read them (a clone
# under /root is not readable by them), and the venv beside them.
mkdir -p "$stage"
chmod 755 "$stage"
rm -rf "$stage/main" "$stage/shared.new"
mkdir -p "$stage/main"
# (tar is part of every Debian system: no cpio, which a fresh machine lacks)
(cd "$here" && git ls-files -z --cached --others --exclude-standard | \
  while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done | \
  tar --null --no-recursion -T - -cf -) | tar -xpf - -C "$stage/main"
if [ -d "$here/../shared" ]; then
  cp -a "$here/../shared" "$stage/shared.new"
  rm -rf "$stage/shared"
  mv "$stage/shared.new" "$stage/shared"
fi
chmod -R a+rX,go-w "$stage/main" "$stage/shared" 2>/dev/null || true

venv="$stage/venv"
want=$(sha256sum "$stage/main/pyproject.toml" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
  echo "== creating $venv" >&2
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -e "$stage/main[test,dev]" >&2
  echo "$want" > "$venv/.stamp"
fi
# (the editable install points at $stage/main, which is refreshed above on every run)
# Byte-compile as root: the test users cannot write __pycache__ in the stage, and
# compiling on every start would cost them ~150 ms per command.
"$venv/bin/python" -m compileall -q -j 0 "$stage/main/secpod" "$stage/main/tests" >/dev/null
chmod -R a+rX "$venv" "$stage/main"

if [ "${1:-}" = "--setup-only" ]; then
  echo "$stage"
  exit 0
fi

# Rootless crun refuses the hybrid cgroup layout this kernel mounts. In a private
# mount namespace (never the host's), unmount the v2 hierarchy so crun sees
# plain v1, and secpod is called with the cgroup manager disabled.
cd "$stage/main"
export SECPOD_STAGE="$stage" SECPOD_TEST_USER="$user" SECPOD_TEST_USER2="$user2"
# No udev here: /dev/net/tun is root's 0600, and pasta needs it. In the same private
# mount namespace only, a 0666 node of the same device is bound over it.
exec unshare -m --propagation private -- bash -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  tun=$(mktemp -d /tmp/secpod-tun.XXXXXX)
  mount -t tmpfs -o mode=0755,size=64k tmpfs "$tun"
  mknod -m 0666 "$tun/tun" c 10 200
  mount --bind "$tun/tun" /dev/net/tun
  exec "$0" -m pytest -p no:cacheprovider "$@"
' "$venv/bin/python" "$@"
