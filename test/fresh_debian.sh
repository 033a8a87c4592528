#!/usr/bin/env bash
# Proves the README's two commands where nothing is preinstalled: builds a
# minimal Debian 12 root (debootstrap --variant=minbase) from the Debian
# mirror this machine's apt is configured with, copies the committed tree
# (git HEAD) into it, and runs, as root inside it:
#   ./test.sh              must end "tests: N passed, 0 failed" and exit 0;
#   ./run.sh --for 20      must exit 0, show the handover and the failover,
#                          and install nothing (test.sh installed it all);
#   deploy/build-deb.sh     the Debian package of run.sh's binary;
#   the quick start's install command in a second fresh root (a VM): the
#                          package, then its binary there as its user.
# (./test.sh includes //test:readme_quickstart_test, the README's quick start
# followed literally.)
# On a failure it prints the tail of the log and exits 1.
#
# Usage (as root): test/fresh_debian.sh [--keep] [--log FILE]
#   --keep      keep the root (its path is printed) instead of deleting it
#   --log FILE  the whole log (default: CACHE/last.log)
#
# Cache, CLOUDHA_FRESH_CACHE (default /var/cache/cloudha/fresh-debian):
#   - the minbase root exactly as debootstrap made it, one per state of the
#     mirror (named by the hash of its InRelease file): it holds only what
#     debootstrap installs, so it can never hide a package cloudha forgot;
#   - the .deb files apt downloaded, bind-mounted as apt's archive cache:
#     apt still installs only the packages test.sh asks for.
# Every mount is made in a mount namespace of its own and every process in a
# PID namespace of its own, so both are gone when a step ends, however it ends.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
cache=${CLOUDHA_FRESH_CACHE:-/var/cache/cloudha/fresh-debian}
keep=0
log=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) keep=1; shift ;;
    --log) [[ $# -ge 2 ]] || { echo "usage: $0 [--keep] [--log FILE]" >&2; exit 1; }
      log=$2; shift 2 ;;
    *) echo "usage: $0 [--keep] [--log FILE]" >&2; exit 1 ;;
  esac
done

say() { printf 'fresh-debian: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot and mounts)"
for cmd in unshare chroot git tar; do
  command -v "$cmd" >/dev/null || die "needs $cmd"
done
mkdir -p "$cache/archives/partial"
log=${log:-$cache/last.log}
: >"$log"

# shellcheck source=deploy/debian-packages.sh
source "$repo/deploy/debian-packages.sh"
cloudha_install_tools debootstrap:debootstrap wget:wget || die "cannot install debootstrap and wget"

# Debian's own sources as this machine's apt has them.
# shellcheck source=deploy/debian-sources.sh
source "$repo/deploy/debian-sources.sh"
sources=$(debian_sources)
mirror=$(debian_mirror "$sources" "$suite")
[[ -n "$mirror" ]] || die "this machine's apt has no Debian $suite source (see /etc/apt/sources.list*)"
arch=$(dpkg --print-architecture)

# The minbase root, made once per state of the mirror.
release_hash=$(wget -qO- "${mirror%/}/dists/$suite/InRelease" | sha256sum | cut -c1-16) ||
  die "cannot read ${mirror%/}/dists/$suite/InRelease"
[[ "$release_hash" != "e3b0c44298fc1c14" ]] || die "${mirror%/}/dists/$suite/InRelease is empty or unreachable"
base="$cache/minbase-$suite-$arch-$release_hash.tar"
started=$SECONDS
if [[ ! -f "$base" ]]; then
  say "debootstrap --variant=minbase $suite from $mirror"
  staging=$(mktemp -d "$cache/debootstrap.XXXXXX")
  trap 'rm -rf --one-file-system "$staging" "$base.part"' EXIT
  # In a mount namespace of its own: whatever debootstrap mounts in the new
  # root is gone when it exits, so the folder can be removed safely.
  if ! unshare --mount --propagation private \
      debootstrap --variant=minbase --arch="$arch" "$suite" "$staging/root" "$mirror" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "debootstrap failed (whole log: $log)"
  fi
  tar -C "$staging/root" -cf "$base.part" . || die "cannot write $base.part (disk full?)"
  mv "$base.part" "$base"
  rm -rf --one-file-system "$staging"
  trap - EXIT
  find "$cache" -maxdepth 1 -name "minbase-$suite-$arch-*.tar" ! -path "$base" -delete
  say "minbase root made in $((SECONDS - started)) s"
else
  say "minbase root of $suite as the mirror has it now (cached, untouched since debootstrap)"
fi

work=$(mktemp -d /var/tmp/cloudha-fresh.XXXXXX)
root="$work/root"
cleanup() {
  # A step cut short (SIGTERM, SIGINT) may leave its processes: everything
  # whose root is inside the work folder is killed (the first of a step's
  # PID namespace takes the rest with it).
  local proc root_of
  for proc in /proc/[0-9]*; do
    root_of=$(readlink "$proc/root" 2>/dev/null) || continue
    [[ "$root_of" == "$work"/* ]] && kill -KILL "${proc#/proc/}" 2>/dev/null
  done
  wait 2>/dev/null || true
  # Steps mount only inside their own namespaces; this is a last guard
  # before deleting, never to remove files through a mount.
  if grep -q " $work/" /proc/self/mounts; then
    grep " $work/" /proc/self/mounts | awk '{ print $2 }' | sort -r | xargs -r -n1 umount -l || true
  fi
  if [[ $keep -eq 1 ]]; then
    say "kept the root: $root"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh root: the minbase root with this machine's Debian sources, mirror
# settings, name resolution and local CAs (nothing else of this machine's).
fresh_root() {  # ROOT
  mkdir -p "$1"
  tar -C "$1" -xf "$base"
  printf '%s\n' "$sources" >"$1/etc/apt/sources.list"
  debian_apt_settings >"$1/etc/apt/apt.conf.d/99host-mirror"
  cp /etc/resolv.conf "$1/etc/resolv.conf" 2>/dev/null || true
  cp /etc/hosts "$1/etc/hosts"
  # The local CAs this machine's network needs (a TLS-inspecting proxy in
  # front of the npm registry): like the proxy settings above, trust, not
  # packages. ca-certificates adds them when it is installed there.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$1/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"
  fi
}
fresh_root "$root"
if ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
  say "note: uncommitted changes are not copied; this tests the committed tree (HEAD)"
fi
mkdir -p "$root/root/cloudha"
git -C "$repo" archive --format=tar HEAD | tar -C "$root/root/cloudha" -xf -
say "copied $(git -C "$repo" rev-parse --short HEAD) into a fresh root"

# Runs a shell command as root inside a fresh root, in new mount and PID
# namespaces; its output goes to the log and to FILE.
in_root() {  # ROOT FILE COMMAND
  local root=$1 out=$2 command=$3 rc=0
  # In the background and waited for, so that SIGTERM and SIGINT reach the
  # traps at once rather than when the step ends.
  # shellcheck disable=SC2016  # expanded by the inner shell
  unshare --mount --pid --fork --kill-child --propagation private /bin/bash -euo pipefail -c '
    root=$1 archives=$2 command=$3
    # The root a mount point of its own, as / is on a machine (ip netns and
    # unshare --propagation change the propagation of /, refused otherwise).
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=0755 tmpfs "$root/run"
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    mount --bind "$archives" "$root/var/cache/apt/archives"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      /bin/bash -c "cd /root/cloudha 2>/dev/null || cd /root; $command"
  ' in_root "$root" "$cache/archives" "$command" >"$out" 2>&1 &
  wait $! || rc=$?
  cat "$out" >>"$log"
  return "$rc"
}

fail_step() {  # WHAT OUTPUT_FILE
  echo "----- last 60 lines of $1 -----" >&2
  tail -n 60 "$2" >&2
  echo "----- (whole log: $log) -----" >&2
  die "$1 failed on a fresh Debian $suite"
}

started=$SECONDS
say "./test.sh (installs the packages, builds from nothing, runs every test)"
rc=0
in_root "$root" "$work/test.out" "./test.sh" || rc=$?
summary=$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed' "$work/test.out" | tail -n 1 || true)
say "./test.sh: ${summary:-no summary line}, exit $rc, $((SECONDS - started)) s"
[[ $rc -eq 0 && -n "$summary" ]] || fail_step "./test.sh" "$work/test.out"

started=$SECONDS
say "./run.sh --for 20"
rc=0
in_root "$root" "$work/run.out" "./run.sh --for 20" || rc=$?
say "./run.sh --for 20: exit $rc, $((SECONDS - started)) s"
[[ $rc -eq 0 ]] || fail_step "./run.sh --for 20" "$work/run.out"
for shown in "cloudha failover on the primary" "kill -9 the primary" "restarting" "role PRIMARY" \
    "config set on the primary" "apply hook" "freezing the primary" "arbiter witness"; do
  grep -q -- "$shown" "$work/run.out" || fail_step "./run.sh --for 20 (it never showed \"$shown\")" "$work/run.out"
done
if grep -q '^installing' "$work/run.out"; then
  fail_step "./run.sh after ./test.sh (it installed packages: test.sh and run.sh must need the same)" "$work/run.out"
fi

# The README's quick start installs the Debian package on a VM: built in the
# first root by deploy/build-deb.sh from ./run.sh's binary, then installed by
# the quick start's own apt-get command in a second fresh root (a VM, no
# systemd running), and the binary run there (certificates through OpenSSL,
# a configuration check).
started=$SECONDS
vm="$work/vm"
fresh_root "$vm"
rc=0
in_root "$root" "$work/deb.out" \
  "rm -rf /root/deb && deploy/build-deb.sh --binary bazel-bin/agent/cli/cloudha --out /root/deb" || rc=$?
[[ $rc -eq 0 ]] || fail_step "deploy/build-deb.sh" "$work/deb.out"
debs=("$root"/root/deb/cloudha_*_amd64.deb)
[[ -f "${debs[0]}" ]] || die "deploy/build-deb.sh wrote no cloudha_*_amd64.deb"
cp "${debs[0]}" "$vm/root/"
# The fenced code block of the quick start that holds "apt-get install".
install_block=$(sed -n '/^## Quick start/,/^## /p' "$repo/README.md" | awk '
  /^[[:space:]]*```/ {
    if (inside && index(text, "apt-get install")) { printf "%s", text; exit }
    inside = !inside; text = ""; next
  }
  inside { sub(/^ +/, ""); text = text $0 "\n" }')
[[ "$install_block" == *"apt-get install"*"cloudha_"*".deb"* ]] ||
  die "the README's quick start shows no apt-get install of the cloudha .deb for the VMs"
say "the quick start's install on a fresh VM root: $(head -n 1 <<<"$install_block")"
rc=0
in_root "$vm" "$work/vm.out" "set -e; $install_block
  getent passwd cloudha >/dev/null
  test -f /etc/cloudha/agent.textproto
  cloudha --version >/dev/null 2>&1 || cloudha --help >/dev/null
  cloudha certs init --cluster prod --nodes a,b --out /etc/cloudha/certs
  cat >/etc/cloudha/agent.textproto <<'CONFIG'
cluster { name: \"prod\" }
node { id: \"a\" }
listen: \"127.0.0.1:7801\"
peers { id: \"b\" addresses: \"127.0.0.1:7802\" }
tls { ca_file: \"certs/ca.crt\" cert_file: \"certs/a.crt\" key_file: \"certs/a.key\" }
CONFIG
  chown cloudha: /etc/cloudha/certs/a.key
  runuser -u cloudha -- cloudha check-config /etc/cloudha/agent.textproto" || rc=$?
say "the package on a VM by the README's command: exit $rc, $((SECONDS - started)) s"
[[ $rc -eq 0 ]] || fail_step "the quick start's install on a fresh VM" "$work/vm.out"

say "passed: ./test.sh, ./run.sh --for 20 and the quick start's install on a fresh Debian $suite"
