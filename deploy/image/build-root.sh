#!/usr/bin/env bash
# The root file system of the VM image, for deploy/image/build-image.sh,
# which runs it in a mount namespace of its own and gives it, in the
# environment: loop (the partition's loop device, formatted), image (the
# disk being built), deb, mirror, suite, cache, uuid (the root's), log,
# sources (apt lines of the build), repo and packages (more packages,
# comma-separated, or empty). Not meant to be run by hand.
set -euo pipefail
: "${loop:?}" "${image:?}" "${deb:?}" "${mirror:?}" "${suite:?}" "${cache:?}" "${uuid:?}" \
  "${log:?}" "${sources:?}" "${repo:?}"
root=$(dirname "$log")/root
mkdir -p "$root"
mount "$loop" "$root"
step() { printf "build-image: %s\n" "$*"; }

step "debootstrap $suite from $mirror"
debootstrap --variant=minbase --cache-dir="$cache" \
  --include=systemd-sysv,udev,dbus,apt-utils,ca-certificates,gnupg \
  "$suite" "$root" "$mirror" >>"$log" 2>&1
printf "%s\n" "$sources" >"$root/etc/apt/sources.list"
# shellcheck source=deploy/debian-sources.sh
source "$repo/deploy/debian-sources.sh"
debian_apt_settings >"$root/etc/apt/apt.conf.d/99build-mirror"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --bind "$cache" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No service starts inside the build.
printf "#!/bin/sh\nexit 101\n" >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/cloudha.deb"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

step "installing the kernel, cloud-init, OpenSSH and cloudha"
in_root apt-get update -q >>"$log" 2>&1
in_root apt-get install -y -q --no-install-recommends \
  linux-image-cloud-amd64 initramfs-tools extlinux syslinux-common \
  cloud-init cloud-guest-utils isc-dhcp-client systemd-resolved systemd-timesyncd \
  openssh-server sudo iproute2 netbase conntrack less \
  ${packages:+${packages//,/ }} /tmp/cloudha.deb >>"$log" 2>&1

step "configuring boot, network and cloud-init"
cat >"$root/etc/fstab" <<FSTAB
UUID=$uuid / ext4 rw,discard,errors=remount-ro 0 1
FSTAB
echo cloudha >"$root/etc/hostname"
echo LANG=C.UTF-8 >"$root/etc/default/locale"
printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$root/etc/hosts"
# Cloud consoles read the first serial port.
mkdir -p "$root/boot/extlinux"
cat >"$root/boot/extlinux/extlinux.conf" <<EXTLINUX
# The kernel and initramfs are the symlinks Debian keeps current at
# /vmlinuz and /initrd.img, so a kernel upgrade needs no change here.
DEFAULT debian
PROMPT 0
TIMEOUT 1
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 consoleblank=0
EXTLINUX
in_root extlinux --install /boot/extlinux >>"$log" 2>&1
dd if="$root/usr/lib/syslinux/mbr/mbr.bin" of="$image.part" bs=440 count=1 conv=notrunc status=none
cp "$repo/deploy/image/90-cloudha.cfg" "$root/etc/cloud/cloud.cfg.d/90-cloudha.cfg"
# Without any data source cloud-init would disable itself (ds-identify's
# default on x86) and the VM would have no network; run it with None.
echo "policy: search,found=all,maybe=all,notfound=enabled" >"$root/etc/cloud/ds-identify.cfg"
in_root systemctl enable systemd-networkd systemd-resolved systemd-timesyncd >>"$log" 2>&1
# resolved owns /etc/resolv.conf in the VM.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Host keys: cloud-init makes new ones at first boot; a VM that got no user
# data makes them here, so ssh works there too.
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n" \
  >"$root/etc/systemd/system/ssh.service.d/10-host-keys.conf"
# The unit starts when the user data has written its files and enables it.
in_root systemctl disable cloudha >>"$log" 2>&1

step "checking the cloud-init example and settings with the image's cloud-init schema"
cp "$repo/deploy/cloud-init/example-user-data.yaml" "$root/tmp/user-data.yaml"
in_root cloud-init schema --config-file /tmp/user-data.yaml >>"$log" 2>&1 ||
  { echo "build-image: deploy/cloud-init/example-user-data.yaml fails cloud-init schema" >&2; exit 1; }
# cloud-init checks its merged settings at boot too (and warns), the
# image's own included.
{ echo "#cloud-config"; cat "$root/etc/cloud/cloud.cfg.d/90-cloudha.cfg"; } >"$root/tmp/settings.yaml"
in_root cloud-init schema --config-file /tmp/settings.yaml >>"$log" 2>&1 ||
  { echo "build-image: deploy/image/90-cloudha.cfg fails cloud-init schema" >&2; exit 1; }

# What each VM must make its own at first boot.
rm -f "$root"/etc/ssh/ssh_host_* "$root/usr/sbin/policy-rc.d" "$root/tmp/cloudha.deb" \
  "$root/tmp/user-data.yaml" "$root/tmp/settings.yaml" "$root/etc/apt/apt.conf.d/99build-mirror" "$root/var/lib/dbus/machine-id"
: >"$root/etc/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/var/lib/cloud
# The image uses Debian's own mirrors, whatever mirror built it.
printf "%s\n" "deb http://deb.debian.org/debian $suite main" \
  "deb http://deb.debian.org/debian $suite-updates main" \
  "deb http://security.debian.org/debian-security $suite-security main" \
  >"$root/etc/apt/sources.list"
umount "$root/var/cache/apt/archives"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
umount -R "$root/dev" "$root/proc" "$root/sys"
# Blocks of deleted files go back to the sparse image (the loop device
# turns discards into holes).
fstrim "$root" >>"$log" 2>&1 || true
umount "$root"
