#!/usr/bin/env bash
# Builds a bootable Debian 12 VM disk image with cloudha installed, for
# cloud-init to configure at first boot (deploy/cloud-init/):
#
#   deploy/image/build-image.sh [--deb FILE] [--out DIR] [--size SIZE] [--packages P,Q]
#
#   --deb FILE  the cloudha .deb to install (default: deploy/build-deb.sh
#               builds it from this tree)
#   --out DIR   where the image goes (default: the current folder)
#   --size SIZE the disk's size, as truncate takes it (default 2G); cloud-init
#               grows the root file system to the VM's disk at first boot
#   --packages  more Debian packages for the image, comma-separated: the
#               cloud CLI the failover hooks call (awscli, azure-cli)
#
# Writes cloudha-VERSION-debian12-amd64.raw: a raw disk with an MBR and one
# ext4 partition, booted by the BIOS through extlinux, with the Debian cloud
# kernel (virtio, NVMe, ENA, Hyper-V drivers), systemd, cloud-init (NoCloud,
# ConfigDrive, EC2, GCE and Azure data sources), systemd-networkd,
# OpenSSH and sudo, conntrack, and the cloudha package with its unit
# installed but not enabled: the user data enables it once it has written
# the configuration, the certificate and the key. Every package comes from
# this machine's Debian mirror; the image's apt sources are Debian's own
# (deb.debian.org, security.debian.org).
#
# Runs as root. Installs what it needs on this machine when it is missing
# (debootstrap, fdisk, e2fsprogs). Downloaded .deb files are kept in
# CLOUDHA_IMAGE_CACHE (default /var/cache/cloudha/image-debs): apt and
# debootstrap verify each against the mirror's signed index, and the image
# gets only the packages listed here, so the cache cannot change what the
# image holds. Mounts are made in a mount namespace of its own and the loop
# device is detached however the script ends.
set -euo pipefail
umask 022

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
suite=bookworm
deb=""
out=$PWD
size=2G
packages=""
cache=${CLOUDHA_IMAGE_CACHE:-/var/cache/cloudha/image-debs}
usage() { echo "usage: deploy/image/build-image.sh [--deb FILE] [--out DIR] [--size SIZE] [--packages P,Q]" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --deb) [[ $# -ge 2 ]] || usage; deb=$(realpath "$2"); shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    --size) [[ $# -ge 2 ]] || usage; size=$2; shift 2 ;;
    --packages) [[ $# -ge 2 && "$2" =~ ^[a-z0-9][a-z0-9.+,-]*$ ]] || usage; packages=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
say() { printf 'build-image: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, a loop device, mounts and chroot)"
[[ $(dpkg --print-architecture) == amd64 ]] || die "builds amd64 images on an amd64 machine only"
[[ -z "$deb" || -f "$deb" ]] || die "no such package: $deb"
mkdir -p "$out" "$cache" || die "cannot create $out or $cache"
out=$(realpath "$out")

# This machine's tools, installed when missing.
# shellcheck source=deploy/debian-packages.sh
source "$repo/deploy/debian-packages.sh"
cloudha_install_tools debootstrap:debootstrap sfdisk:fdisk mkfs.ext4:e2fsprogs losetup:mount \
  unshare:util-linux chroot:coreutils || die "cannot install the tools it needs"

# shellcheck source=deploy/debian-sources.sh
source "$repo/deploy/debian-sources.sh"
sources=$(debian_sources)
mirror=$(debian_mirror "$sources" "$suite")
[[ -n "$mirror" ]] || die "this machine's apt has no Debian $suite source (see /etc/apt/sources.list*)"

version=$(tr -d ' \n' <"$repo/VERSION")
image="$out/cloudha-$version-debian12-amd64.raw"
work=$(mktemp -d /var/tmp/cloudha-image.XXXXXX)
log="$work/build.log"
loop=""
cleanup() {
  local rc=$?
  [[ -n "$loop" ]] && losetup -d "$loop" 2>/dev/null
  if [[ $rc -ne 0 && -f "$log" ]]; then
    tail -n 40 "$log" >&2
    cp "$log" "$out/build-image.log" 2>/dev/null && say "whole log: $out/build-image.log" >&2
    rm -f "$image.part"
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
started=$SECONDS

if [[ -z "$deb" ]]; then
  say "building the package (deploy/build-deb.sh)"
  (cd "$work" && "$repo/deploy/build-deb.sh" --out "$work") >>"$log" 2>&1 ||
    die "deploy/build-deb.sh failed"
  deb=$(ls "$work"/cloudha_*_amd64.deb)
fi

# The disk: an MBR with one bootable Linux partition from 1 MiB to the end.
truncate -s "$size" "$image.part" || die "cannot create $image.part (disk full?)"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$image.part" >>"$log" 2>&1 ||
  die "sfdisk failed"
start=$((2048 * 512))
# The partition through a loop device at its offset (no partition scan:
# containers often have no udev to make /dev/loopNpM).
loop=$(losetup --show -f -o "$start" "$image.part") || die "no loop device (losetup -f failed)"
uuid=$(cat /proc/sys/kernel/random/uuid)
# extlinux reads ext4 but not the 64bit feature's block numbers above 2^32;
# the root stays far below that anyway.
mkfs.ext4 -q -L cloudha-root -U "$uuid" -O ^64bit "$loop" >>"$log" 2>&1 || die "mkfs.ext4 failed"

# Everything that mounts runs in a mount namespace of its own
# (deploy/image/build-root.sh): mounts are gone when it exits, however it
# exits.
export image deb mirror suite cache uuid loop log sources repo packages
unshare --mount --propagation private "$repo/deploy/image/build-root.sh" ||
  die "building the image failed"
e2fsck -fy "$loop" >>"$log" 2>&1 || [[ $? -le 1 ]] || die "e2fsck found errors in the new root"
losetup -d "$loop"
loop=""
mv "$image.part" "$image"
used=$(du -k "$image" | cut -f1)
say "$image: $size disk, $((used / 1024)) MiB used, built in $((SECONDS - started)) s"
