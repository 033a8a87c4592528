#!/usr/bin/env bash
# Installs what is missing, builds, and runs a local cloudha cluster: two
# agents, a and b, and the split-brain witness on 127.0.0.1 with a
# throw-away CA, showing their events and their status once a second until
# Ctrl-C, or for --for SECONDS. Every 20 seconds it shows a failover: at 6 s
# an operator handover (cloudha failover), at 12 s the primary is killed
# (kill -9) and at 15 s restarted, at 17 s the primary is frozen (SIGSTOP,
# as a paused VM: cut off from everything) and at 19 s thawed.
#
# Sessions come and go all the while, so session sync has something to do.
# As root, where `ip netns` and conntrack work, each agent's session source
# is the kernel's conntrack table of a network namespace of its own
# (cloudha-demo-a, cloudha-demo-b: sessions.netns; the agents still talk on
# 127.0.0.1), and run.sh adds 40 entries a second to the primary's and
# deletes each 4-15 s later (conntrack -R; addresses in 198.18.0.0/15).
# Otherwise the agents take a publisher, and run.sh publishes 40 generated
# sessions to the primary every 2 s (cloudha sessions publish), each
# expiring 10-25 s later. It says which at its start, shows when sessions
# reach the secondary and what a new primary took over, and removes the
# namespaces when it ends (Ctrl-C too).
set -euo pipefail
cd "$(dirname "$0")"

usage() { echo "usage: ./run.sh [--for SECONDS]" >&2; exit 1; }
duration=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --for) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; duration=$2; shift 2 ;;
    --for=*) duration=${1#--for=}; [[ "$duration" =~ ^[0-9]+$ ]] || usage; shift ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done

# shellcheck source=deploy/debian-packages.sh
source deploy/debian-packages.sh
cloudha_install_packages
bazel build //agent/cli:cloudha --noshow_progress --ui_event_filters=-info 2>&1 |
  grep -v -e '^Loading' -e '^Analyzing' -e '^INFO:' -e '^Target //' -e '^  bazel-bin' || true
cloudha="$(bazel info bazel-bin 2>/dev/null)/agent/cli/cloudha"
[[ -x "$cloudha" ]] || { echo "build failed" >&2; exit 1; }

work=$(mktemp -d /tmp/cloudha-run.XXXXXX)
pids=()
nodes=()
made_netns=()  # the network namespaces run.sh added; cleanup deletes them
remove_netns() {
  local ns
  for ns in "${made_netns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  made_netns=()
}
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  remove_netns
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Where the sessions come from: conntrack in a network namespace per node
# when root may make them and conntrack works there, else a publisher.
session_mode=publisher
why_publisher=""
choose_session_mode() {
  local node ns probe
  if [[ $(id -u) -ne 0 ]]; then why_publisher="not root"; return; fi
  if ! command -v ip >/dev/null 2>&1 || ! command -v conntrack >/dev/null 2>&1; then
    why_publisher="ip or conntrack is missing"
    return
  fi
  probe=(-p udp -s 198.18.255.1 -d 198.19.255.1 --sport 9 --dport 9)
  for node in a b; do
    ns=cloudha-demo-$node
    ip netns del "$ns" 2>/dev/null || true  # left by a run.sh that was killed
    if ! ip netns add "$ns" 2>"$work/netns.err"; then
      why_publisher="ip netns add failed: $(head -n 1 "$work/netns.err")"
      remove_netns
      return
    fi
    made_netns+=("$ns")
    if ! ip -n "$ns" link set lo up 2>"$work/netns.err" ||
        ! ip netns exec "$ns" conntrack -I "${probe[@]}" -t 5 >/dev/null 2>"$work/netns.err" ||
        ! ip netns exec "$ns" conntrack -D "${probe[@]}" >/dev/null 2>"$work/netns.err"; then
      why_publisher="conntrack in a network namespace failed: $(head -n 1 "$work/netns.err")"
      remove_netns
      return
    fi
  done
  session_mode=conntrack
}
choose_session_mode

"$cloudha" certs init --cluster demo --nodes a,b,witness --out "$work/certs" >/dev/null

port_a=${CLOUDHA_PORT_BASE:-7800}
session_config() {  # node
  if [[ $session_mode == conntrack ]]; then
    echo "sessions { pickup: true source: CONNTRACK pickup_connectionless: true" \
      "netns: \"cloudha-demo-$1\" commit: CONTINUOUS }"
  else
    echo "sessions { pickup: true source: PUBLISHER pickup_connectionless: true }"
  fi
}
write_config() {  # node peer listen_port peer_port health_port priority metrics_port
  cat >"$work/$1.textproto" <<CONFIG
cluster { name: "demo" group_id: 7 }
node { id: "$1" priority: $6 }
listen: "127.0.0.1:$3"
peers { id: "$2" addresses: "127.0.0.1:$4" }
tls { ca_file: "certs/ca.crt" cert_file: "certs/$1.crt" key_file: "certs/$1.key" }
heartbeat { interval_ms: 200 lost_threshold: 6 }
election { hello_holddown_s: 2 failover_hold_s: 5 }
admin { socket: "$1.sock" }
health { listen: "127.0.0.1:$5" }
metrics { listen: "127.0.0.1:$7" }
state_dir: "state/$1"
$(session_config "$1")
arbiter { witness { addresses: "127.0.0.1:$((port_a + 10))" } lease_ttl_ms: 1200 }
config_sync {
  exclude: "system.hostname"
  exclude: "system.interface.**"
  on_change { prefix: "firewall." command: "$work/apply-config.sh" }
}
CONFIG
}
# The apply hook: what a firewall would reload; here it records the paths.
cat >"$work/apply-config.sh" <<'HOOK'
#!/bin/sh
echo "[$CLOUDHA_NODE] apply hook: revision $CLOUDHA_CONFIG_REVISION, $CLOUDHA_CONFIG_PATHS_COUNT changed: $*" \
  >>"$(dirname "$0")/apply.log"
HOOK
chmod 755 "$work/apply-config.sh"
: >"$work/apply.log"
write_config a b $((port_a + 1)) $((port_a + 2)) $((port_a + 101)) 200 $((port_a + 201))
write_config b a $((port_a + 2)) $((port_a + 1)) $((port_a + 102)) 100 $((port_a + 202))

start_agent() {  # index node
  # $! is the agent itself (not a pipeline's last process), so cleanup can
  # stop it with SIGTERM and wait for its clean shutdown.
  "$cloudha" agent --config "$work/$2.textproto" > >(sed -u "s/^/[$2] /") 2>&1 &
  pids[$1]=$!
  nodes[$1]=$2
}
# The split-brain arbiter a third zone would run (docs/arbiter.md).
cat >"$work/witness.textproto" <<CONFIG
listen: "127.0.0.1:$((port_a + 10))"
tls { ca_file: "certs/ca.crt" cert_file: "certs/witness.crt" key_file: "certs/witness.key" }
state_dir: "state/witness"
CONFIG
"$cloudha" witness --config "$work/witness.textproto" > >(sed -u "s/^/[witness] /") 2>&1 &
pids[2]=$!
nodes[2]=witness
start_agent 0 a
start_agent 1 b

primary() {  # prints the index of the node that is primary, if any
  local i
  for i in 0 1; do
    [[ "$i" == "$frozen" ]] && continue
    if "$cloudha" status --socket "$work/${nodes[$i]}.sock" 2>/dev/null |
        grep -q '^role PRIMARY'; then
      echo "$i"
      return
    fi
  done
}
killed=""
frozen=""

# Sessions that come and go in the primary's data plane: each call adds a
# batch of new ones, and each of those ends some seconds later (conntrack:
# run.sh deletes it 4-15 s later, well before the kernel's timeout, as if it
# ended; publisher: its timeout, 10-25 s, runs out on the primary), so the
# table stays at a few hundred.
session_seq=0
declare -A session_ends=()  # conntrack: second -> the conntrack -D lines due then
ipv4_base64() { printf '%b' "$(printf '\\x%02x' "$@")" | base64; }  # a.b.c.d as proto3 JSON bytes
if [[ $session_mode == publisher ]]; then
  dst_base64=$(ipv4_base64 198 19 0 10)
  src_base64=()
  for n in $(seq 1 16); do src_base64+=("$(ipv4_base64 198 18 0 "$n")"); done
fi
make_sessions() {  # index of the primary
  local i n proto port due key batch=""
  for ((i = 0; i < 40; i++)); do
    n=$((session_seq++))
    proto=tcp
    port=443
    if ((n % 4 == 3)); then proto=udp; port=53; fi
    if [[ $session_mode == conntrack ]]; then
      key="-p $proto -s 198.18.$((n / 250 % 250)).$((n % 250 + 1)) -d 198.19.0.10"
      key+=" --sport $((20000 + n % 40000)) --dport $port"
      batch+="-I $key -t 60"
      [[ $proto == tcp ]] && batch+=" --state ESTABLISHED -u SEEN_REPLY,ASSURED"
      batch+=$'\n'
      due=$((second + RANDOM % 12 + 4))
      session_ends[$due]+="-D $key"$'\n'
    else
      batch+="{\"family\":\"IPV4\",\"l4_protocol\":$([[ $proto == tcp ]] && echo 6 || echo 17),"
      batch+="\"original\":{\"src_addr\":\"${src_base64[n % 16]}\",\"dst_addr\":\"$dst_base64\","
      batch+="\"src_port\":$((20000 + n % 40000)),\"dst_port\":$port},"
      [[ $proto == tcp ]] && batch+="\"tcp_state\":\"TCP_ESTABLISHED\",\"flags\":14,"
      batch+="\"timeout_s\":$((RANDOM % 16 + 10))}"$'\n'
    fi
  done
  if [[ $session_mode == conntrack ]]; then
    for due in "${!session_ends[@]}"; do
      if [[ $due -le $second ]]; then
        batch+=${session_ends[$due]}
        unset "session_ends[$due]"
      fi
    done
    ip netns exec "cloudha-demo-${nodes[$1]}" conntrack -R - <<<"${batch%$'\n'}" >/dev/null 2>&1 || true
  else
    "$cloudha" sessions publish --socket "$work/${nodes[$1]}.sock" <<<"$batch" >/dev/null 2>&1 || true
  fi
}
count_sessions() {  # index
  "$cloudha" sessions --count --socket "$work/${nodes[$1]}.sock" 2>/dev/null || echo 0
}
last_primary=""
replica_count=(0 0)

echo "cloudha: agents a and b on 127.0.0.1:$((port_a + 1)) and :$((port_a + 2)) (mutual TLS);" \
  "files in $work"
if [[ $session_mode == conntrack ]]; then
  echo "cloudha: sessions from the kernel's conntrack table in network namespaces cloudha-demo-a" \
    "and cloudha-demo-b (sessions.netns); run.sh adds entries to the primary's with conntrack"
else
  echo "cloudha: sessions from a publisher: run.sh publishes them to the primary" \
    "(cloudha sessions publish); not conntrack in network namespaces: $why_publisher"
fi
[[ $duration -gt 0 ]] && echo "cloudha: stopping by itself after ${duration}s" ||
  echo "cloudha: Ctrl-C to stop"
applied=0
second=0
while [[ $duration -eq 0 || $second -lt $duration ]]; do
  sleep 1
  second=$((second + 1))
  case $((second % 20)) in
    3)
      if [[ $second -lt 20 ]]; then
        for node in a b; do  # zone-local values: excluded, so each node keeps its own
          "$cloudha" config set system.hostname "fw-zone-$node" --socket "$work/$node.sock" \
            >/dev/null 2>&1 || true
        done
      fi
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: config set on the primary, ${nodes[$p]}: firewall.policy.$second.action = accept"
        "$cloudha" config set "firewall.policy.$second.action" accept \
          --socket "$work/${nodes[$p]}.sock" || true
      fi ;;
    4)
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: cloudha config checksum --cluster (each subtree on every node)"
        "$cloudha" config checksum --cluster --socket "$work/${nodes[$p]}.sock" || true
        echo "=== run.sh: zone-local (excluded) system.hostname differs, checksums still agree:" \
          "a=$("$cloudha" config get system.hostname --socket "$work/a.sock" 2>/dev/null)" \
          "b=$("$cloudha" config get system.hostname --socket "$work/b.sock" 2>/dev/null)"
      fi ;;
    6)
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: cloudha failover on the primary, ${nodes[$p]} (operator handover)"
        "$cloudha" failover --socket "$work/${nodes[$p]}.sock" || true
      fi ;;
    12)
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: kill -9 the primary, ${nodes[$p]} ($(count_sessions "$p") sessions);" \
          "the other must take over"
        kill -KILL "${pids[$p]}" 2>/dev/null || true
        wait "${pids[$p]}" 2>/dev/null || true
        killed=$p
      fi ;;
    14)
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: the new primary's Prometheus metrics (curl" \
          "127.0.0.1:$((port_a + 201 + p))/metrics; the series that are not 0):"
        curl -s --max-time 2 "http://127.0.0.1:$((port_a + 201 + p))/metrics" |
          grep -E '^cloudha_(role|epoch|peer_up|role_changes_total|sessions|config_revision)[{ ]' |
          grep -v ' 0$' || true
      fi ;;
    15)
      if [[ -n "$killed" ]]; then
        echo "=== run.sh: restarting ${nodes[$killed]}; it rejoins as secondary"
        start_agent "$killed" "${nodes[$killed]}"
        killed=""
      fi ;;
    17)
      if p=$(primary) && [[ -n "$p" ]]; then
        echo "=== run.sh: freezing the primary, ${nodes[$p]} (SIGSTOP, as a paused VM): the other" \
          "takes over only once the frozen one's lease ran out on the witness"
        kill -STOP "${pids[$p]}" 2>/dev/null || true
        frozen=$p
      fi ;;
    19)
      if [[ -n "$frozen" ]]; then
        echo "=== run.sh: thawing ${nodes[$frozen]}: its lease is gone, so it steps down" \
          "instead of serving as a second primary"
        kill -CONT "${pids[$frozen]}" 2>/dev/null || true
        frozen=""
      fi ;;
  esac
  for i in "${!pids[@]}"; do
    [[ "$i" == "$killed" ]] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "cloudha: ${nodes[$i]} exited; its log lines above say why" >&2
      exit 1
    fi
  done
  # The sessions: what a new primary took over, a batch of new ones, and
  # when they reach a secondary.
  p=$(primary) || p=""
  if [[ -n "$p" ]]; then
    if [[ -n "$last_primary" && "$p" != "$last_primary" ]]; then
      echo "=== run.sh: ${nodes[$p]} is primary now (was ${nodes[$last_primary]}) and holds" \
        "$(count_sessions "$p") sessions"
    fi
    last_primary=$p
    if [[ $session_mode == conntrack || $((second % 2)) -eq 1 ]]; then make_sessions "$p"; fi
  fi
  for i in 0 1; do
    if [[ "$i" == "$p" || "$i" == "$frozen" || "$i" == "$killed" ]]; then
      replica_count[i]=0
      continue
    fi
    count=$(count_sessions "$i")
    if [[ $count -gt 0 && ${replica_count[i]} -eq 0 && -n "$p" ]]; then
      echo "=== run.sh: sessions reached the secondary, ${nodes[$i]}: $count" \
        "(the primary, ${nodes[$p]}, has $(count_sessions "$p"))"
    fi
    replica_count[i]=$count
  done
  lines=$(wc -l <"$work/apply.log")
  if [[ $lines -gt $applied ]]; then
    tail -n +$((applied + 1)) "$work/apply.log" | head -n $((lines - applied))
    applied=$lines
  fi
  for i in 0 1; do
    node=${nodes[$i]}
    echo "--- $node, ${second}s ---"
    if [[ "$i" == "$frozen" ]]; then echo "(frozen)"; continue; fi
    "$cloudha" status --socket "$work/$node.sock" 2>&1 | sed -n '2,3p;5,$p' || true
    "$cloudha" sessions --lag --socket "$work/$node.sock" 2>&1 || true
  done
done
