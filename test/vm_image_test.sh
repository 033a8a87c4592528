#!/usr/bin/env bash
# Boots two copies of the cloudha VM image (deploy/image/build-image.sh) as a
# pair, each configured by cloud-init from deploy/cloud-init's template on a
# NoCloud seed disk, and checks from the host what a user would:
#
#   boot        both VMs boot, cloud-init finishes without errors and its
#               schema check of the user data passes
#   ready       both units are active (Type=notify: READY=1 arrived)
#   pair        each node sees the other up, with the same primary
#   serving     cloudha.v1.Primary is SERVING on exactly one health port
#   journal     each node's role change is in its journal, with PRIORITY
#   reload      a monitor added to a node's file is applied by SIGHUP
#               (systemctl reload), by the same process
#   power-off   the primary's VM is powered off hard (its qemu killed):
#               the other turns SERVING on cloudha.v1.Primary
#
# and prints the figures: image size, boot to READY, boot to the pair
# formed, power-off to the survivor SERVING, and how the VMs ran.
#
# Usage (as root): test/vm_image_test.sh [--image FILE] [--cloudha BIN] [--keep]
#   --image FILE   boot this image instead of building one
#   --cloudha BIN  the host's cloudha (certificates, probes); default: Bazel's
#   --keep         keep the work folder (consoles, logs, seeds)
#
# The VMs run under qemu with KVM where KVM can boot the image, otherwise
# under qemu's own emulation (TCG), slower but the same boot: firmware,
# boot loader, kernel, initramfs, seed disk. It says which ran; it never
# passes without booting. Traffic stays on a bridge inside a network
# namespace of the test's own (198.18.7.0/24).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=""
cloudha=""
keep=0
usage() { echo "usage: test/vm_image_test.sh [--image FILE] [--cloudha BIN] [--keep]" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) [[ $# -ge 2 ]] || usage; image=$(realpath "$2"); shift 2 ;;
    --cloudha) [[ $# -ge 2 ]] || usage; cloudha=$(realpath "$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done
say() { printf 'vm-image: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespace, taps, KVM)"

# This machine's tools, installed when missing.
# shellcheck source=deploy/debian-packages.sh
source "$repo/deploy/debian-packages.sh"
cloudha_install_tools qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils \
  mkfs.vfat:dosfstools mcopy:mtools ssh:openssh-client ip:iproute2 ||
  die "cannot install the tools it needs"

work=$(mktemp -d /var/tmp/cloudha-vmtest.XXXXXX)
ns="cloudha-vm$$"
declare -A qemu_pid=()
cleanup() {
  local rc=$? pid
  for pid in "${qemu_pid[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    for node in a b; do
      [[ -f "$work/$node.console" ]] || continue
      say "the last lines of $node's console:" >&2
      tail -n 25 "$work/$node.console" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' >&2
    done
  fi
  if [[ $keep -eq 1 ]]; then say "kept $work"; else rm -rf --one-file-system "$work"; fi
}
trap cleanup EXIT
trap 'say "failed: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "$cloudha" ]]; then
  (cd "$repo" && bazel build //agent/cli:cloudha >"$work/bazel.log" 2>&1) ||
    { tail -n 20 "$work/bazel.log" >&2; die "bazel build //agent/cli:cloudha failed"; }
  cloudha=$(cd "$repo" && realpath bazel-bin/agent/cli/cloudha)
fi
if [[ -z "$image" ]]; then
  say "building the image (deploy/image/build-image.sh)"
  build_started=$SECONDS
  "$repo/deploy/image/build-image.sh" --out "$work" | sed 's/^/  /' || die "the image build failed"
  build_s=$((SECONDS - build_started))
  image=$(ls "$work"/cloudha-*-debian12-amd64.raw)
fi
image_mib=$(( $(du -k "$image" | cut -f1) / 1024 ))
image_disk=$(( $(stat -c %s "$image") / 1024 / 1024 ))

# Certificates, an ssh key, and a NoCloud seed per node from the template.
"$cloudha" certs init --cluster vmtest --nodes a,b --out "$work/pki" >/dev/null
ssh-keygen -q -t ed25519 -N '' -C vmtest -f "$work/id"
declare -A addr=([a]=198.18.7.11 [b]=198.18.7.12) mac=([a]=52:54:00:12:07:11 [b]=52:54:00:12:07:12)
declare -A peer=([a]=b [b]=a) priority=([a]=200 [b]=100)
for node in a b; do
  seed="$work/seed-$node"
  mkdir -p "$seed"
  "$repo/deploy/cloud-init/render-user-data.sh" hostname="vmtest-$node" cluster=vmtest group_id=7 \
    node_id="$node" priority="${priority[$node]}" peer_id="${peer[$node]}" \
    peer_address="${addr[${peer[$node]}]}" peer_port=7801 health_port=7901 probe_port=7902 \
    heartbeat_interval_ms=200 heartbeat_lost_threshold=6 \
    'exclude=["system.interface.**"]' 'extra_config=' "ssh_authorized_keys=[\"$(cat "$work/id.pub")\"]" \
    ca_crt_b64=@"$work/pki/ca.crt" node_crt_b64=@"$work/pki/$node.crt" \
    node_key_b64=@"$work/pki/$node.key" >"$seed/user-data"
  printf 'instance-id: vmtest-%s\nlocal-hostname: vmtest-%s\n' "$node" "$node" >"$seed/meta-data"
  cat >"$seed/network-config" <<EOF
version: 2
ethernets:
  sync0:
    match: { macaddress: "${mac[$node]}" }
    set-name: sync0
    addresses: [${addr[$node]}/24]
EOF
  mkfs.vfat -n CIDATA -C "$work/seed-$node.img" 2048 >/dev/null
  mcopy -i "$work/seed-$node.img" "$seed/user-data" "$seed/meta-data" "$seed/network-config" ::
  qemu-img create -q -f qcow2 -F raw -b "$image" "$work/$node.qcow2"
done

# The private bridge, inside a namespace of the test's own.
ip netns add "$ns"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
in_ns ip link add br0 type bridge
in_ns ip addr add 198.18.7.1/24 dev br0
in_ns ip link set br0 up
for node in a b; do
  in_ns ip tuntap add "tap-$node" mode tap
  in_ns ip link set "tap-$node" master br0 up
done

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
start_vm() {  # NODE ACCELERATOR CPU
  local node=$1
  : >"$work/$node.console"
  ip netns exec "$ns" qemu-system-x86_64 -accel "$2" -cpu "$3" -machine pc -m 1024 -smp 1 -nodefaults \
    -display none -serial "file:$work/$node.console" \
    -drive "file=$work/$node.qcow2,if=virtio,format=qcow2" \
    -drive "file=$work/seed-$node.img,if=virtio,format=raw" \
    -netdev "tap,id=n0,ifname=tap-$node,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=${mac[$node]}" >"$work/$node.qemu.log" 2>&1 &
  qemu_pid[$node]=$!
}
stop_vm() {  # NODE: a hard power-off
  kill -KILL "${qemu_pid[$1]}" 2>/dev/null || true
  wait "${qemu_pid[$1]}" 2>/dev/null || true
  unset "qemu_pid[$1]"
}

# KVM where it runs this image: a first VM under KVM must print its kernel's
# first line within 20 s. Some hosts expose /dev/kvm but cannot run an
# unmodified guest (nested hypervisors that take only paravirtual guests:
# "KVM internal error ... emulation failure" in the firmware or boot
# loader). Then both VMs run under qemu's own emulation (TCG): the same
# image, firmware, boot loader, kernel and seed disk, only slower.
how=""
kvm_why="no usable /dev/kvm"
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
  start_vm a kvm qemu64
  deadline=$((SECONDS + 20))
  while [[ $SECONDS -lt $deadline ]]; do
    if grep -q 'Linux version' "$work/a.console"; then how="KVM"; break; fi
    if grep -q 'KVM internal error\|failed to initialize kvm' "$work/a.qemu.log" ||
        ! kill -0 "${qemu_pid[a]}" 2>/dev/null; then
      kvm_why="KVM cannot run it here: $(grep -m1 -o 'KVM internal error.*\|failed to initialize kvm.*' "$work/a.qemu.log" || head -c 200 "$work/a.qemu.log")"
      break
    fi
    sleep 0.2
  done
  [[ -n "$how" ]] || { [[ $kvm_why != "no usable"* ]] || kvm_why="KVM booted no kernel in 20 s"; stop_vm a; }
fi
if [[ "$how" == KVM ]]; then
  start_vm b kvm qemu64
else
  how="TCG (qemu's emulation; $kvm_why)"
  start_vm a tcg max
  start_vm b tcg max
fi
say "booting two VMs under $how on 198.18.7.0/24 in namespace $ns"

vm() {  # NODE COMMAND...: as root on the VM, through ssh as cloud-init's user
  local node=$1
  shift
  in_ns ssh -q -i "$work/id" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=3 "debian@${addr[$node]}" \
    "sudo $(printf '%q ' "$@")"
}
probe() {  # NODE SERVICE: exit 0 when SERVING
  in_ns "$cloudha" probe --addr "${addr[$1]}:7901" --service "$2" \
    --connect-timeout 1s --rpc-timeout 1s >/dev/null 2>&1
}
until_true() {  # SECONDS WHAT COMMAND...: retries every 0.5 s, at most SECONDS
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    [[ $SECONDS -lt $deadline ]] || die "$what: not within $limit s"
    local node
    for node in a b; do
      kill -0 "${qemu_pid[$node]}" 2>/dev/null || die "$node's qemu exited: $(tail -c 300 "$work/$node.qemu.log")"
    done
    sleep 0.5
  done
}
field() {  # FIELD: its value in the journal entry on stdin (journalctl -o export)
  sed -n "s/^$1=//p" | head -n 1
}

check() {  # STEP MESSAGE
  say "[passed] $1: $2"
}
# Conditions waited for.
cloud_init_finished() { vm "$1" cloud-init status | grep -q -E 'status: (done|error)'; }
unit_active() { [[ $(vm "$1" systemctl is-active cloudha) == active ]]; }
sees_peer_up() { vm "$1" journalctl -u cloudha EVENT=peer_up --no-pager -q -o cat | grep -q .; }
any_primary() { probe a cloudha.v1.Primary || probe b cloudha.v1.Primary; }
has_monitor() { vm "$1" cloudha status | grep -q -- "$2"; }

# boot
for node in a b; do
  until_true 240 "$node answers on ssh" vm "$node" true
done
for node in a b; do
  until_true 300 "$node's cloud-init done" cloud_init_finished "$node"
  status=$(vm "$node" cloud-init status --long) || die "$node: cloud-init reports errors: $status"
  warnings=$(vm "$node" grep -E "WARNING|ERROR" /var/log/cloud-init.log) &&
    die "$node: cloud-init logged warnings or errors: $warnings"
  vm "$node" cloud-init schema --system >"$work/$node.schema" 2>&1 ||
    die "$node: cloud-init schema --system refuses the user data: $(cat "$work/$node.schema")"
done
check boot "both VMs booted, cloud-init done, user data valid"

# ready
declare -A ready_ms=()
for node in a b; do
  until_true 60 "$node's cloudha unit active" unit_active "$node"
  ready_us=$(vm "$node" systemctl show cloudha -P ActiveEnterTimestampMonotonic)
  [[ "$ready_us" -gt 0 ]] || die "$node: the unit is active but has no activation time"
  ready_ms[$node]=$((ready_us / 1000))
done
check ready "both units active (READY=1): ${ready_ms[a]} ms and ${ready_ms[b]} ms after their kernels started"

# pair
declare -A pair_ms=()
for node in a b; do
  until_true 30 "$node sees ${peer[$node]} up" sees_peer_up "$node"
  line=$(vm "$node" journalctl -u cloudha -o export EVENT=peer_up -n 1 --no-pager)
  pair_ms[$node]=$(( $(field __MONOTONIC_TIMESTAMP <<<"$line") / 1000 ))
done
check pair "a saw b up ${pair_ms[a]} ms, b saw a up ${pair_ms[b]} ms after their kernels started"

# serving
primary=""
until_true 15 "one node SERVING cloudha.v1.Primary" any_primary
serving=()
for node in a b; do probe "$node" cloudha.v1.Primary && serving+=("$node"); done
[[ ${#serving[@]} -eq 1 ]] || die "cloudha.v1.Primary is SERVING on ${#serving[@]} nodes (${serving[*]:-none})"
primary=${serving[0]}
survivor=${peer[$primary]}
probe "$survivor" cloudha.v1.Secondary || die "$survivor is not SERVING cloudha.v1.Secondary"
check serving "cloudha.v1.Primary SERVING on $primary only; $survivor serves cloudha.v1.Secondary"

# journal
for node in a b; do
  line=$(vm "$node" journalctl -u cloudha -o export EVENT=role_changed -n 1 --no-pager)
  [[ -n "$line" ]] || die "$node: no role_changed event in the journal"
  prio=$(field PRIORITY <<<"$line")
  [[ "$prio" =~ ^[0-7]$ ]] || die "$node: the journal entry has no priority: $line"
  msg=$(field MESSAGE <<<"$line")
  say "  $node's journal, PRIORITY=$prio: $msg"
done
check journal "each node's role change is in its journal with its priority"

# reload
main_pid=$(vm "$survivor" systemctl show cloudha -P MainPID)
vm "$survivor" sh -c 'printf "%s\n" "monitors { name: \"vmtest-reload\" exec { command: \"/bin/true\" } interval_ms: 200 }" >>/etc/cloudha/agent.textproto'
vm "$survivor" systemctl reload cloudha
until_true 10 "$survivor applies the new monitor" has_monitor "$survivor" vmtest-reload
[[ $(vm "$survivor" systemctl show cloudha -P MainPID) == "$main_pid" ]] || die "$survivor: the agent restarted on reload"
vm "$survivor" journalctl -u cloudha EVENT=config_reloaded --no-pager -q -o cat | grep -q . ||
  die "$survivor: no config_reloaded event in the journal"
check reload "$survivor applied a new monitor on SIGHUP (systemctl reload), same process"

# power-off
off_ms=$(now_ms)
stop_vm "$primary"
while ! probe "$survivor" cloudha.v1.Primary; do
  [[ $(( $(now_ms) - off_ms )) -lt 30000 ]] || die "$survivor did not turn SERVING within 30 s of $primary's power-off"
  sleep 0.02
done
takeover_ms=$(( $(now_ms) - off_ms ))
check power-off "$primary powered off; $survivor SERVING cloudha.v1.Primary $takeover_ms ms later"

say "figures: image $image_disk MiB disk, $image_mib MiB used${build_s:+, built in $build_s s};" \
  "boot to READY: a ${ready_ms[a]} ms, b ${ready_ms[b]} ms; boot to the pair formed: a ${pair_ms[a]} ms," \
  "b ${pair_ms[b]} ms (from the kernels' start); power-off to the survivor SERVING: $takeover_ms ms;" \
  "the VMs ran under $how"
say "all 7 checks passed"
