# shellcheck shell=bash
# Shared by the cloud hooks (aws-eip.sh, aws-route.sh, gcp-route.sh,
# azure-route.sh); sourced, not run. Every function fails closed: a cloud
# call or metadata lookup that fails, times out or answers something
# unexpected ends the hook with a log line saying why and a non-zero exit,
# and the hook changes nothing after it. cloudha retries a failing hook
# (retries, backoff_ms) and gives the role up if it keeps failing.
#
# Exit codes: 1 bad arguments or environment; 2 a cloud call or lookup
# failed (the resource is as it was, or as a newer epoch left it); 3 refused:
# the resource is held at a newer epoch (or fencing token).
#
# The hook sets `hook` (its name) before sourcing.

epoch=${CLOUDHA_EPOCH:-}
fence=${CLOUDHA_FENCE:-}
# Seconds each cloud call may take (the CLIs retry throttling themselves
# within it); the hook's own timeout_ms in cloudha bounds the whole hook.
call_timeout=${CLOUDHA_CLOUD_CALL_TIMEOUT:-20}
# The instance metadata service (tests point it elsewhere).
metadata=${CLOUDHA_METADATA_URL:-http://169.254.169.254}

# To stderr: also from inside $(...), where stdout is the value.
log() { echo "${hook:?}: node=${CLOUDHA_NODE:-?} epoch=${epoch:-?}${fence:+ fence=$fence} $*" >&2; }
fail() {  # CODE REASON...
  local code=$1
  shift
  log "failed: $*"
  exit "$code"
}
usage() { echo "usage: ${hook:?} $*" >&2; exit 1; }

[[ "$epoch" =~ ^[0-9]+$ ]] || fail 1 "CLOUDHA_EPOCH is not set or not a number (run by cloudha)"
[[ -z "$fence" || "$fence" =~ ^[0-9]+$ ]] || fail 1 "CLOUDHA_FENCE is not a number: $fence"

# cloud CLI ARGS...: runs the cloud's CLI with a timeout; its output on
# stdout; on failure the hook ends (exit 2) with the CLI's error.
cloud() {
  local cli=$1
  shift
  command -v "$cli" >/dev/null 2>&1 || fail 2 "$cli is not installed (or not on PATH)"
  local out err rc=0
  err=$(mktemp)
  out=$(timeout "$call_timeout" "$cli" "$@" 2>"$err") || rc=$?
  if [[ $rc -ne 0 ]]; then
    local why
    why=$(tr '\n' ' ' <"$err" | cut -c1-300)
    rm -f "$err"
    [[ $rc -eq 124 ]] && fail 2 "$cli $1 $2 timed out after ${call_timeout}s"
    fail 2 "$cli $1 $2 exited $rc: ${why:-no message}"
  fi
  rm -f "$err"
  printf '%s\n' "$out"
}

# The claim a resource carries: "EPOCH" or "EPOCH/FENCE" ("" for none).
claim() { echo "$epoch${fence:+/$fence}"; }

# refuse_newer WHAT CLAIM: ends the hook (exit 3) when CLAIM, as read from
# the resource, is newer than ours: a higher epoch, or with both fencing
# tokens known, a higher token. A claim that is not EPOCH[/FENCE] ends it
# too (exit 2): it cannot be compared, so nothing is changed.
refuse_newer() {
  local what=$1 held=$2
  [[ -z "$held" || "$held" == "None" ]] && return 0
  [[ "$held" =~ ^([0-9]+)(/([0-9]+))?$ ]] || fail 2 "$what carries a claim that is not EPOCH[/FENCE]: $held"
  local held_epoch=${BASH_REMATCH[1]} held_fence=${BASH_REMATCH[3]}
  # Base 10 always: a leading zero must not make it octal.
  if (( 10#$held_epoch > 10#$epoch )); then
    fail 3 "refusing: $what is held at newer epoch $held_epoch"
  fi
  if [[ -n "$fence" && -n "$held_fence" ]] && (( 10#$held_fence > 10#$fence )); then
    fail 3 "refusing: $what is held with newer fencing token $held_fence"
  fi
  return 0
}

# still_ours WHAT CLAIM: after the change, the claim read back must be ours;
# a newer one means another primary claimed it meanwhile (its change wins:
# exit 3 and cloudha gives the role up); anything else is a failure.
still_ours() {
  local what=$1 held=$2
  [[ "$held" == "$(claim)" ]] && return 0
  refuse_newer "$what" "$held"
  fail 2 "$what: the claim read back is \"$held\", not ours ($(claim))"
}

# fenced WHAT READ WRITE CHANGE: the claim protocol every hook follows for
# one resource, given the names of its functions: READ prints the claim the
# resource carries, WRITE writes ours, CHANGE points the resource here. A
# newer claim is refused before anything changes; ours is written before the
# change and read back after it, so a newer primary that claimed it
# meanwhile wins (exit 3).
fenced() {
  local what=$1 read=$2 write=$3 change=$4 held now
  held=$("$read")
  refuse_newer "$what" "$held"
  log "claiming $what (held: ${held:-none}; reason: ${CLOUDHA_REASON:-})"
  "$write"
  "$change"
  now=$("$read")
  still_ours "$what" "$now"
}

# Instance metadata, each fails closed.
aws_metadata() {  # PATH under /latest/meta-data/ (IMDSv2)
  local token
  token=$(curl -sf -m 2 -X PUT "$metadata/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 60") || fail 2 "no IMDSv2 token from $metadata"
  curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" "$metadata/latest/meta-data/$1" ||
    fail 2 "instance metadata $1 is not available"
}
# AWS: this instance's region, and its primary network interface.
aws_region() { aws_metadata placement/region; }
aws_primary_eni() {
  local mac
  mac=$(aws_metadata mac)
  aws_metadata "network/interfaces/macs/$mac/interface-id"
}
gcp_metadata() {  # PATH under /computeMetadata/v1/
  curl -sf -m 2 -H "Metadata-Flavor: Google" "$metadata/computeMetadata/v1/$1" ||
    fail 2 "instance metadata $1 is not available"
}
azure_metadata() {  # PATH under /metadata/instance/, as text
  curl -sf -m 2 -H "Metadata: true" \
    "$metadata/metadata/instance/$1?api-version=2021-02-01&format=text" ||
    fail 2 "instance metadata $1 is not available"
}
