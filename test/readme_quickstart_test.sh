#!/usr/bin/env bash
# Follows README.md's "Quick start: a pair on two VMs" literally, on one
# machine: the certificates command and the configuration are taken from the
# README's own code blocks, and the agents are started with the systemd
# unit's own ExecStartPre/ExecStart lines. Each VM is a network namespace
# (the README's 10.0.1.10 and 10.0.2.10 become 198.18.1.10 and 198.18.2.10,
# joined by a veth pair) with its own /etc/cloudha, /var/lib/cloudha and
# /run/cloudha (what the unit's StateDirectory= and RuntimeDirectory= make).
# Needs root and `ip netns`; each step is skipped with the reason otherwise.
# Writes one JUnit testcase per README step to $XML_OUTPUT_FILE.
set -euo pipefail

runfiles=${TEST_SRCDIR:-$PWD/..}/cloudha
readme="$runfiles/README.md"
unit="$runfiles/deploy/systemd/cloudha.service"
example="$runfiles/deploy/config/agent.textproto"
cloudha="$runfiles/agent/cli/cloudha"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/quickstart.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
tag=$(($$ % 100000))

steps=(certs check_config example_config agents_start peer_up probe_health probe_mtls log_event)
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"
steps_init readme_quickstart ReadmeQuickstart "$xml" "${steps[@]}"
record() { step_record "$@"; }

pids=()
made_dirs=()
stop_hung=""
cleanup() {
  local pid dir
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # An agent stops within seconds of SIGTERM (a handover, hooks of at most
  # 5 s); one still running after 30 s is a defect, shown with its log.
  for _ in $(seq 1 300); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      stop_hung+=" $pid"
      if command -v gdb >/dev/null; then  # where it is stuck, when gdb is there
        gdb -q -batch -p "$pid" -ex "thread apply all bt 20" >"$work/stuck-$pid.txt" 2>&1 || true
      fi
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "qs$tag-a" 2>/dev/null || true
  ip netns del "qs$tag-b" 2>/dev/null || true
  for dir in "${made_dirs[@]}"; do rmdir "$dir" 2>/dev/null || true; done
}
finish() {
  local rc=$?
  trap - EXIT
  cleanup
  if [[ -n "$stop_hung" ]]; then
    echo "agents still running 30 s after SIGTERM (killed):$stop_hung"
    for node in a b; do
      echo "--- $node's log, last lines"
      tail -n 30 "$work/$node-agent.log" 2>/dev/null || true
    done
    for f in "$work"/stuck-*.txt; do
      [[ -f "$f" ]] || continue
      echo "--- $(basename "$f"): threads not waiting"
      grep -E '^(Thread|#)' "$f" | grep -v -e 'syscall ()' -e epoll_wait -e 'Waiter::Wait' \
        -e PerThreadSem -e gpr_cv_wait -e clone3 -e start_thread -e futex || true
    done
    steps_names+=(stop)
    record stop failed "an agent did not stop within 30 s of SIGTERM"
  fi
  steps_write_xml
  rm -rf "$work"
  steps_failed && exit 1
  exit "$rc"
}
trap finish EXIT

skip_all() {
  local step
  for step in "${steps_names[@]}"; do
    [[ -n "${steps_result[$step]:-}" ]] || record "$step" skipped "$1"
  done
  exit 0
}
fail() {  # STEP MESSAGE [LOG]
  record "$1" failed "$2"
  if [[ -n "${3:-}" && -f "$3" ]]; then tail -n 40 "$3"; fi
  exit 1
}

# The README's quick-start section and its code blocks.
section=$(sed -n '/^## Quick start/,/^## /p' "$readme")
block() {  # TEXT: the first fenced code block of the section that holds TEXT, unindented
  awk -v want="$1" '
    /^[[:space:]]*```/ {
      if (inside && index(text, want)) { printf "%s", text; found = 1; exit }
      inside = !inside; text = ""; next
    }
    inside { sub(/^   /, ""); text = text $0 "\n" }
  ' <<<"$section"
}
certs_command=$(block "cloudha certs init ")
config_a=$(block 'node { id: "a"')
[[ "$certs_command" == "cloudha certs init "* ]] ||
  fail certs "the quick start has no code block with a 'cloudha certs init' command"
[[ -n "$config_a" ]] || fail check_config "the quick start has no code block with node a's configuration"

# 2. Certificates, with the README's command, in a folder of this test's.
(cd "$work" && eval "\"$cloudha\" ${certs_command#cloudha }") >"$work/certs.log" 2>&1 ||
  fail certs "'$certs_command' failed" "$work/certs.log"
for file in ca.crt ca.key a.crt a.key b.crt b.key; do
  [[ -f "$work/pki/$file" ]] || fail certs "'$certs_command' wrote no pki/$file"
done
for key in ca.key a.key b.key; do
  [[ $(stat -c %a "$work/pki/$key") == 600 ]] || fail certs "pki/$key is not mode 0600"
done
record certs passed ""

# 3. Configuration: a's from the README, b's its mirror image, each checked
# in /etc/cloudha as the README places it (certificates in certs/ beside it).
mirror_image() {
  sed -e 's/id: "a"/id: "@"/; s/id: "b"/id: "a"/; s/id: "@"/id: "b"/' \
    -e 's/priority: 200/priority: 100/' \
    -e 's#certs/a\.#certs/@.#g; s#certs/b\.#certs/a.#g; s#certs/@\.#certs/b.#g' \
    -e 's/10\.0\.2\.10/10.0.1.10/g'
}
for node in a b; do
  mkdir -p "$work/$node/etc/certs" "$work/$node/lib" "$work/$node/run"
  chmod 0700 "$work/$node/lib"
  cp "$work/pki/ca.crt" "$work/pki/$node.crt" "$work/pki/$node.key" "$work/$node/etc/certs/"
done
printf '%s\n' "$config_a" >"$work/a/etc/agent.textproto"
printf '%s\n' "$config_a" | mirror_image >"$work/b/etc/agent.textproto"
grep -q 'id: "b" priority: 100' "$work/b/etc/agent.textproto" ||
  fail check_config "cannot make b's mirror image of the README's configuration"

if [[ $(id -u) -ne 0 ]]; then skip_all "needs root for network namespaces and /etc/cloudha"; fi
if ! ip netns add "qs$tag-a" 2>"$work/netns.err"; then
  skip_all "ip netns add failed: $(cat "$work/netns.err")"
fi
ip netns add "qs$tag-b"
ip link add "qs$tag-a" netns "qs$tag-a" type veth peer name "qs$tag-b" netns "qs$tag-b"
for node in a b; do
  address=198.18.1.10
  [[ $node == b ]] && address=198.18.2.10
  ip -n "qs$tag-$node" addr add "$address/15" dev "qs$tag-$node"
  ip -n "qs$tag-$node" link set "qs$tag-$node" up
  ip -n "qs$tag-$node" link set lo up
done
# The README's paths exist on a node; here each node's folders are mounted
# on them in a mount namespace of its own. Folders this test had to create
# on this machine are removed at the end.
for dir in /etc/cloudha /var/lib/cloudha /run/cloudha; do
  if [[ ! -d $dir ]]; then
    mkdir -p "$dir"
    made_dirs+=("$dir")
  fi
done

# Runs a command on "VM" NODE: in its network namespace, with its folders
# on /etc/cloudha, /var/lib/cloudha and /run/cloudha, the README's addresses
# mapped into 198.18.0.0/15, and /usr/bin/cloudha being this build.
# shellcheck disable=SC2016  # expanded by the inner shell
node_shell='set -euo pipefail
  node_dir=$1 cloudha=$2
  shift 2
  mount --bind "$node_dir/etc" /etc/cloudha
  mount --bind "$node_dir/lib" /var/lib/cloudha
  mount --bind "$node_dir/run" /run/cloudha
  args=()
  for arg in "$@"; do
    arg=${arg//10.0.1.10/198.18.1.10}
    arg=${arg//10.0.2.10/198.18.2.10}
    [[ $arg == /usr/bin/cloudha ]] && arg=$cloudha
    args+=("$arg")
  done
  exec "${args[@]}"'
on_node() {  # NODE COMMAND...
  ip netns exec "qs$tag-$1" unshare --mount --propagation private /bin/bash -c "$node_shell" \
    on_node "$work/$1" "$cloudha" "${@:2}"
}
# The same in the background, its output to LOG; every step execs the
# next, so $! is the agent itself and cleanup's SIGTERM reaches it.
start_on_node() {  # LOG NODE COMMAND...
  (exec ip netns exec "qs$tag-$2" unshare --mount --propagation private /bin/bash -c "$node_shell" \
    on_node "$work/$2" "$cloudha" "${@:3}") >"$1" 2>&1 &
  pids+=($!)
}
for node in a b; do
  sed -i -e 's/10\.0\.1\.10/198.18.1.10/g; s/10\.0\.2\.10/198.18.2.10/g' "$work/$node/etc/agent.textproto"
done

# The unit's commands, as systemd would run them.
exec_start_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ -n "$exec_start_pre" && -n "$exec_start" ]] || fail check_config "$unit has no ExecStartPre= or ExecStart="
for node in a b; do
  # shellcheck disable=SC2086  # the unit's command line, split as systemd splits it
  on_node "$node" $exec_start_pre >"$work/$node-check.log" 2>&1 ||
    fail check_config "ExecStartPre ($exec_start_pre) refused $node's configuration" "$work/$node-check.log"
done
record check_config passed ""

# The example the README says to start from must pass too, on node a.
cp "$example" "$work/a/etc/example.textproto"
on_node a "$cloudha" check-config /etc/cloudha/example.textproto >"$work/example.log" 2>&1 ||
  fail example_config "deploy/config/agent.textproto does not pass check-config beside the quick start's certificates" "$work/example.log"
record example_config passed ""

# 4. Start, with the unit's ExecStart.
for node in a b; do
  # shellcheck disable=SC2086
  start_on_node "$work/$node-agent.log" "$node" $exec_start
done
peer_up=0
for _ in $(seq 1 100); do  # at most 20 s
  if on_node a /usr/bin/cloudha status >"$work/a-status.log" 2>&1 &&
      grep -Eq '^b +UP ' "$work/a-status.log"; then
    peer_up=1
    break
  fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || fail agents_start "an agent exited" "$work/a-agent.log"
  done
  sleep 0.2
done
record agents_start passed ""

# 5. Look: status, the probes, the log line.
[[ $peer_up -eq 1 ]] || fail peer_up "'cloudha status' on a never showed peer b UP" "$work/a-status.log"
grep -E '^b +UP ' "$work/a-status.log" | grep -Eq '[0-9.]+ ?ms' || fail peer_up "'cloudha status' shows no round-trip time" "$work/a-status.log"
record peer_up passed ""

probe=$(grep -o 'cloudha probe --addr 10\.0\.1\.10:7901[^`]*' <<<"$section" | head -n 1 || true)
[[ -n "$probe" ]] || fail probe_health "the quick start shows no 'cloudha probe --addr 10.0.1.10:7901'"
# shellcheck disable=SC2086
on_node b /usr/bin/cloudha ${probe#cloudha } >"$work/probe.log" 2>&1 ||
  fail probe_health "'$probe' from b did not exit 0" "$work/probe.log"
record probe_health passed ""

# The mTLS probe of the peer port, as the CLI reference writes it (files
# named as certs init wrote them).
mtls=$(tr '\n' ' ' <"$readme" | grep -o 'cloudha probe --addr 10\.0\.1\.10:7801 --tls [^`]*' | head -n 1 |
  tr -s ' ' || true)
[[ -n "$mtls" ]] || fail probe_mtls "the README shows no mTLS probe of 10.0.1.10:7801"
mtls=${mtls//ca.crt/$work/pki/ca.crt}
mtls=${mtls//b.crt/$work/pki/b.crt}
mtls=${mtls//b.key/$work/pki/b.key}
# shellcheck disable=SC2086
on_node b /usr/bin/cloudha ${mtls#cloudha } >"$work/mtls.log" 2>&1 ||
  fail probe_mtls "'$mtls' from b did not exit 0" "$work/mtls.log"
record probe_mtls passed ""

grep -q 'event=peer_up peer=b' "$work/a-agent.log" ||
  fail log_event "a's log has no 'event=peer_up peer=b' line as the README shows" "$work/a-agent.log"
record log_event passed ""
