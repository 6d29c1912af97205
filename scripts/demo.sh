#!/usr/bin/env bash
# The main job on a built-in default, from a fresh Debian 12 machine, as root:
# install what is missing, make an unprivileged user with subuid/subgid ranges,
# build a small image from Debian's busybox-static with secpod's own code, sign
# it, and run it under --profile strict as that user, showing what the sandbox
# enforced. Run as an ordinary user on a prepared host, it runs the same steps
# as that user (secpod doctor says what the host is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
  stage=$(bash "$here/scripts/test-env.sh" --setup-only)
  user=${SECPOD_TEST_USER:-secpodtest}
  work=$(mktemp -d /var/tmp/secpod-demo.XXXXXX)
  chmod 755 "$work"
  chown "$user:" "$work"
  # Rootless crun refuses this kernel's hybrid cgroup layout: give the demo a private
  # mount namespace without the v2 mount (the host's mounts are not touched).
  exec unshare -m --propagation private -- bash -c '
    if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
    exec setpriv --reuid="$1" --regid="$1" --init-groups --reset-env \
      env HOME="$2" PATH="$3/venv/bin:/usr/bin:/bin" XDG_RUNTIME_DIR="$2/run" \
      XDG_DATA_HOME="$2/data" XDG_CONFIG_HOME="$2/config" bash "$3/main/scripts/demo.sh"
  ' demo "$user" "$work" "$stage"
fi

mkdir -p "${XDG_RUNTIME_DIR:?}" && chmod 700 "$XDG_RUNTIME_DIR"
cd "$HOME"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "secpod doctor: what this host allows"
secpod doctor || true

say "build an image from Debian's busybox-static with secpod's own code, and import it"
python3 - <<'PY'
from pathlib import Path
from secpod.images.build import busybox_rootfs, write_layout
root = busybox_rootfs(Path("demo-rootfs"))
print(write_layout(root, Path("demo-layout"), cmd=["/bin/sh"]))
PY
secpod image import demo-layout --name demo/busybox:1.0
secpod image ls

say "sign it with a fresh cosign key, and require that signature"
export COSIGN_PASSWORD=demo-passphrase
secpod key generate --output-key-prefix demo
secpod sign demo/busybox:1.0 --key demo.key
secpod trust set --type sigstoreSigned --pubkeysfile demo.pub docker.io/demo/busybox
secpod verify demo/busybox:1.0 --key demo.pub

say "run it under --profile strict and look from inside"
secpod run --rm --profile strict demo/busybox:1.0 sh -c '
  echo "whoami: $(id)"
  echo "uid_map:"; sed "s/^/  /" /proc/self/uid_map
  grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status
  echo "network interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " ")"
  touch /escape 2>&1 || true
  unshare -U true 2>&1 || true
  echo "bytes read from the masked /proc/keys: $(wc -c < /proc/keys)"
'

say "what strict asked for and this host could not enforce (recorded, not pretended)"
secpod create --profile strict --name demo-inspect demo/busybox:1.0 true >/dev/null
secpod inspect demo-inspect | python3 -c 'import json,sys; i=json.load(sys.stdin)[0]; print("\n".join("  - " + u for u in i["Secpod"]["unenforced"]) or "  (everything enforced)")'
secpod rm demo-inspect >/dev/null

say "another image, never signed, is refused under strict"
python3 - <<'PY'
from pathlib import Path
from secpod.images.build import write_layout
print(write_layout(Path("demo-rootfs"), Path("demo-layout-2"), cmd=["/bin/echo", "unsigned"]))
PY
secpod image import demo-layout-2 --name demo/unsigned:1.0
secpod run --rm --profile strict demo/unsigned:1.0 true || echo "(refused, exit $?)"

say "the audit trail of all this"
secpod audit log | tail -n 12
