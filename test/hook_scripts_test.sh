#!/usr/bin/env bash
# The shipped cloud hooks fail closed and fence by epoch. The cloud CLIs
# (aws, gcloud, az) and curl (the metadata service) are replaced by stubs on
# PATH that keep a tiny model of the cloud in files (tags, routes,
# associations) and can fail, throttle, hang, or let a newer primary claim
# the resource in the middle of the hook. No cloud is reachable here; what
# is tested is the scripts' own logic: every failure leaves the resource as
# it was and exits non-zero, a newer epoch is never overwritten.
# The checks are functions run through check(), which shellcheck cannot see.
# shellcheck disable=SC2317
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
hooks="$runfiles/deploy/hooks"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/hooks.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
mkdir -p "$work/bin" "$work/state/routes"
state=$work/state

# The stubs. FAIL names a call (e.g. "associate-address" or
# "replace-route rtb-2") that fails with exit 255; THROTTLE one that fails
# as AWS's throttling does; HANG one that sleeps 5 s; RACE, when set, is
# the claim a newer primary writes right after ours.
cat >"$work/bin/aws" <<'STUB'
#!/usr/bin/env bash
echo "aws $*" >>"$STATE/calls"
call="$2"; res=""
for a in "$@"; do
  [[ "$a" =~ ^(Name=resource-id,Values=)?((rtb|eipalloc)-[0-9a-z]+)$ ]] && res=${BASH_REMATCH[2]}
done
for mode in FAIL THROTTLE HANG; do
  want=${!mode:-}
  [[ -n "$want" && ( "$want" == "$call" || "$want" == "$call $res" ) ]] || continue
  case $mode in
    FAIL) echo "An error occurred (UnauthorizedOperation) when calling $call" >&2; exit 255 ;;
    THROTTLE) echo "An error occurred (RequestLimitExceeded): Request limit exceeded." >&2; exit 254 ;;
    HANG) sleep 5 ;;
  esac
done
case "$call" in
  describe-tags) cat "$STATE/tag-$res" 2>/dev/null || echo None ;;
  create-tags)
    for a in "$@"; do
      [[ "$a" =~ ^Key=cloudha-epoch[^,]*,Value=(.*)$ ]] && echo "${BASH_REMATCH[1]}" >"$STATE/tag-$res"
    done
    [[ -n "${RACE:-}" ]] && echo "$RACE" >"$STATE/tag-$res"
    true ;;
  associate-address | replace-route) echo "$*" >"$STATE/target-$res" ;;
esac
STUB
cat >"$work/bin/gcloud" <<'STUB'
#!/usr/bin/env bash
echo "gcloud $*" >>"$STATE/calls"
call="$3"
[[ "${FAIL:-}" == "routes $call" ]] && { echo "ERROR: (gcloud.compute.routes.$call) PERMISSION_DENIED" >&2; exit 1; }
case "$call" in
  list) ls "$STATE/routes" | sort ;;
  create)
    touch "$STATE/routes/$4"
    [[ -n "${RACE:-}" ]] && touch "$STATE/routes/$RACE"
    true ;;
  delete) rm -f "$STATE/routes/$4" ;;
esac
STUB
cat >"$work/bin/az" <<'STUB'
#!/usr/bin/env bash
echo "az $*" >>"$STATE/calls"
table=""; prev=""
for a in "$@"; do
  [[ "$prev" == "-n" && -z "$table" ]] && table=$a
  [[ "$prev" == "--route-table-name" ]] && table=$a
  prev=$a
done
[[ -n "${FAIL:-}" && "$*" == *"${FAIL}"* ]] && { echo "ERROR: (AuthorizationFailed)" >&2; exit 1; }
case "$*" in
  "network route-table show"*) cat "$STATE/tag-$table" 2>/dev/null || echo ;;
  "network route-table update"*)
    for a in "$@"; do [[ "$a" =~ ^tags\.cloudha-epoch[^=]*=(.*)$ ]] && echo "${BASH_REMATCH[1]}" >"$STATE/tag-$table"; done
    [[ -n "${RACE:-}" ]] && echo "$RACE" >"$STATE/tag-$table"
    true ;;
  "network route-table route update"*) echo "$*" >"$STATE/target-$table" ;;
esac
STUB
# The metadata service of each cloud.
cat >"$work/bin/curl" <<'STUB'
#!/usr/bin/env bash
echo "curl $*" >>"$STATE/calls"
[[ -n "${METADATA_DOWN:-}" ]] && exit 7
url=""; for a in "$@"; do [[ "$a" == http* ]] && url=$a; done
case "$url" in
  */latest/api/token) echo token-1 ;;
  */meta-data/placement/region) echo eu-west-1 ;;
  */meta-data/mac) echo 0a:00:00:00:00:01 ;;
  */meta-data/network/interfaces/macs/0a:00:00:00:00:01/interface-id) echo eni-meta ;;
  */computeMetadata/v1/instance/name) echo vm-a ;;
  */computeMetadata/v1/instance/zone) echo projects/1/zones/europe-west1-b ;;
  */computeMetadata/v1/project/project-id) echo proj-1 ;;
  */metadata/instance/compute/resourceGroupName*) echo rg-meta ;;
  */metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress*) echo 10.0.1.4 ;;
  *) exit 22 ;;
esac
STUB
chmod +x "$work/bin/"*
# Never the real metadata service, even if a stub were missed.
export PATH="$work/bin:$PATH" STATE="$state" CLOUDHA_NODE=a CLOUDHA_REASON="peer b lost" \
  CLOUDHA_METADATA_URL=http://127.0.0.1:9

checks=()
declare -A results=()
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"

reset() {  # a fresh cloud
  rm -rf "$state"
  mkdir -p "$state/routes"
  : >"$state/calls"
}
# check NAME WANT_EXIT [VAR=VALUE...] -- SCRIPT ARGS...: runs the hook with
# the environment given, compares its exit code; later asserts use $out.
out=""
run() {
  local want=$1 rc=0
  shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  out=$(env "${envs[@]}" "$@" 2>&1) || rc=$?
  [[ $rc -eq $want ]] || { echo "exit $rc, want $want: $*: $out"; return 1; }
}
check() {  # NAME COMMAND...: a step that passes when COMMAND does
  local name=$1 why
  shift
  checks+=("$name")
  if why=$("$@" 2>&1); then results[$name]="passed"; else results[$name]="failed: $why"; fi
}
untouched() { [[ ! -e "$state/target-$1" ]] || { echo "$1 was changed: $(cat "$state/target-$1")"; return 1; }; }
no_call() { ! grep -q -- "$1" "$state/calls" || { echo "called: $(grep -- "$1" "$state/calls")"; return 1; }; }
has() { grep -q -- "$2" "$1" || { echo "no \"$2\" in: $(cat "$1")"; return 1; }; }
logged() { grep -q -- "$1" <<<"$out" || { echo "no \"$1\" in the output: $out"; return 1; }; }

eip=("$hooks/aws-eip.sh" --allocation-id eipalloc-1)

# --- AWS Elastic IP ---
t_eip_claims() {
  reset
  run 0 CLOUDHA_EPOCH=5 -- "${eip[@]}" &&
    has "$state/target-eipalloc-1" "--network-interface-id eni-meta" &&
    has "$state/target-eipalloc-1" "--region eu-west-1" &&
    has "$state/tag-eipalloc-1" "^5$" && logged "epoch=5"
}
check eip_claims_with_metadata_eni_and_region t_eip_claims
t_eip_newer() {
  reset; echo 7 >"$state/tag-eipalloc-1"
  run 3 CLOUDHA_EPOCH=5 -- "${eip[@]}" --eni eni-1 --region r && untouched eipalloc-1 &&
    no_call create-tags && logged "newer epoch 7"
}
check eip_refuses_a_newer_epoch t_eip_newer
t_eip_older() {
  reset; echo 4 >"$state/tag-eipalloc-1"
  run 0 CLOUDHA_EPOCH=5 -- "${eip[@]}" --eni eni-1 --region r && has "$state/tag-eipalloc-1" "^5$"
}
check eip_takes_it_from_an_older_epoch t_eip_older
t_eip_read_fails() {
  reset
  run 2 CLOUDHA_EPOCH=5 FAIL=describe-tags -- "${eip[@]}" --eni eni-1 --region r &&
    untouched eipalloc-1 && no_call create-tags && logged "UnauthorizedOperation"
}
check eip_fails_closed_when_the_tag_cannot_be_read t_eip_read_fails
t_eip_throttled() {
  reset
  run 2 CLOUDHA_EPOCH=5 THROTTLE=describe-tags -- "${eip[@]}" --eni eni-1 --region r &&
    untouched eipalloc-1 && logged "RequestLimitExceeded"
}
check eip_fails_closed_when_throttled t_eip_throttled
t_eip_hangs() {
  reset
  run 2 CLOUDHA_EPOCH=5 HANG=describe-tags CLOUDHA_CLOUD_CALL_TIMEOUT=1 -- \
    "${eip[@]}" --eni eni-1 --region r && untouched eipalloc-1 && logged "timed out"
}
check eip_fails_closed_when_a_call_hangs t_eip_hangs
t_eip_assoc_fails() {
  reset
  run 2 CLOUDHA_EPOCH=5 FAIL=associate-address -- "${eip[@]}" --eni eni-1 --region r &&
    untouched eipalloc-1
}
check eip_reports_a_failed_association t_eip_assoc_fails
t_eip_race() {
  reset
  run 3 CLOUDHA_EPOCH=5 RACE=6 -- "${eip[@]}" --eni eni-1 --region r &&
    has "$state/tag-eipalloc-1" "^6$" && logged "newer epoch 6"
}
check eip_yields_to_a_newer_claim_made_meanwhile t_eip_race
t_eip_fence() {
  reset; echo 5/9 >"$state/tag-eipalloc-1"
  run 3 CLOUDHA_EPOCH=5 CLOUDHA_FENCE=8 -- "${eip[@]}" --eni eni-1 --region r &&
    untouched eipalloc-1 && logged "fencing token 9" &&
    run 0 CLOUDHA_EPOCH=6 CLOUDHA_FENCE=10 -- "${eip[@]}" --eni eni-1 --region r &&
    has "$state/tag-eipalloc-1" "^6/10$"
}
check eip_fences_on_the_arbiter_token_too t_eip_fence
t_eip_garbage() {
  reset; echo "abc" >"$state/tag-eipalloc-1"
  run 2 CLOUDHA_EPOCH=5 -- "${eip[@]}" --eni eni-1 --region r && untouched eipalloc-1
}
check eip_refuses_a_claim_it_cannot_read t_eip_garbage
t_eip_octal() {
  reset; echo 09 >"$state/tag-eipalloc-1"
  run 3 CLOUDHA_EPOCH=8 -- "${eip[@]}" --eni eni-1 --region r && untouched eipalloc-1
}
check eip_reads_leading_zeros_as_decimal t_eip_octal
t_eip_no_metadata() {
  reset
  run 2 CLOUDHA_EPOCH=5 METADATA_DOWN=1 -- "${eip[@]}" && untouched eipalloc-1 &&
    no_call "aws ec2"
}
check eip_fails_closed_without_metadata t_eip_no_metadata
t_eip_no_cli() {
  reset
  run 2 CLOUDHA_EPOCH=5 PATH="$work/nowhere:/usr/bin:/bin" -- "${eip[@]}" --eni eni-1 --region r &&
    logged "aws is not installed"
}
check eip_fails_closed_without_the_cli t_eip_no_cli
t_bad_env() {
  reset
  run 1 -- env -u CLOUDHA_EPOCH "${eip[@]}" && run 1 CLOUDHA_EPOCH=5 -- "$hooks/aws-eip.sh" &&
    run 1 CLOUDHA_EPOCH=5 CLOUDHA_FENCE=x -- "${eip[@]}"
}
check missing_epoch_arguments_or_bad_fence_are_errors t_bad_env

# --- AWS routes, several tables ---
route=("$hooks/aws-route.sh" --route-table rtb-1 --route-table rtb-2 --route-table rtb-3 --cidr 0.0.0.0/0)
t_route_claims() {
  reset
  run 0 CLOUDHA_EPOCH=8 -- "${route[@]}" && for t in rtb-1 rtb-2 rtb-3; do
    has "$state/target-$t" "--destination-cidr-block 0.0.0.0/0 --network-interface-id eni-meta" || return 1
    has "$state/tag-$t" "^8$" || return 1
  done
}
check route_claims_every_table t_route_claims
t_route_partial() {
  reset
  run 2 CLOUDHA_EPOCH=8 FAIL="replace-route rtb-2" -- "${route[@]}" &&
    has "$state/target-rtb-1" "eni-meta" && untouched rtb-2 && untouched rtb-3 &&
    run 0 CLOUDHA_EPOCH=8 -- "${route[@]}" && has "$state/target-rtb-3" "eni-meta"
}
check route_stops_at_a_failed_table_and_a_rerun_finishes t_route_partial
t_route_newer() {
  reset; echo 9 >"$state/tag-rtb-2"
  run 3 CLOUDHA_EPOCH=8 -- "${route[@]}" && untouched rtb-2 && untouched rtb-3
}
check route_refuses_a_table_held_at_a_newer_epoch t_route_newer

# --- Google Cloud ---
gcp=("$hooks/gcp-route.sh" --network vpc --cidr 0.0.0.0/0)
name() { printf 'cloudha-vpc-0-0-0-0-0-e%016d' "$1"; }
t_gcp_claims() {
  reset; touch "$state/routes/$(name 3)"
  run 0 CLOUDHA_EPOCH=5 -- "${gcp[@]}" && [[ -e "$state/routes/$(name 5)" ]] &&
    [[ ! -e "$state/routes/$(name 3)" ]] && has "$state/calls" "--next-hop-instance=vm-a" &&
    has "$state/calls" "--next-hop-instance-zone=europe-west1-b" && has "$state/calls" "--project=proj-1"
}
check gcp_creates_its_route_and_deletes_older_ones t_gcp_claims
t_gcp_newer() {
  reset; touch "$state/routes/$(name 7)"
  run 3 CLOUDHA_EPOCH=5 -- "${gcp[@]}" && no_call "routes create" && [[ -e "$state/routes/$(name 7)" ]]
}
check gcp_refuses_when_a_newer_route_exists t_gcp_newer
t_gcp_create_fails() {
  reset; touch "$state/routes/$(name 3)"
  run 2 CLOUDHA_EPOCH=5 FAIL="routes create" -- "${gcp[@]}" && [[ -e "$state/routes/$(name 3)" ]] &&
    no_call "routes delete"
}
check gcp_keeps_the_old_route_when_create_fails t_gcp_create_fails
t_gcp_race() {
  reset; touch "$state/routes/$(name 3)"
  run 3 CLOUDHA_EPOCH=5 RACE="$(name 6)" -- "${gcp[@]}" && [[ -e "$state/routes/$(name 6)" ]] &&
    [[ -e "$state/routes/$(name 3)" ]] && [[ ! -e "$state/routes/$(name 5)" ]]
}
check gcp_removes_only_its_own_route_when_a_newer_one_appears t_gcp_race
t_gcp_list_fails() {
  reset
  run 2 CLOUDHA_EPOCH=5 FAIL="routes list" -- "${gcp[@]}" && no_call "routes create"
}
check gcp_fails_closed_when_routes_cannot_be_listed t_gcp_list_fails

# --- Azure ---
az_hook=("$hooks/azure-route.sh" --route-table rt-1 --route-table rt-2 --route default)
t_az_claims() {
  reset
  run 0 CLOUDHA_EPOCH=8 -- "${az_hook[@]}" && has "$state/target-rt-1" "--next-hop-ip-address 10.0.1.4" &&
    has "$state/target-rt-2" "-g rg-meta" && has "$state/tag-rt-2" "^8$"
}
check azure_claims_every_table_with_metadata t_az_claims
t_az_newer() {
  reset; echo 9 >"$state/tag-rt-1"
  run 3 CLOUDHA_EPOCH=8 -- "${az_hook[@]}" && untouched rt-1 && untouched rt-2
}
check azure_refuses_a_newer_epoch t_az_newer
t_az_fails() {
  reset
  run 2 CLOUDHA_EPOCH=8 FAIL="route-table show" -- "${az_hook[@]}" && untouched rt-1 &&
    no_call "route update"
}
check azure_fails_closed_when_the_table_cannot_be_read t_az_fails
t_az_race() {
  reset
  run 3 CLOUDHA_EPOCH=8 RACE=9 -- "${az_hook[@]}" && untouched rt-2
}
check azure_yields_to_a_newer_claim_made_meanwhile t_az_race

steps_init hook_scripts HookScripts "$xml" "${checks[@]}"
for name in "${checks[@]}"; do
  if [[ ${results[$name]} == passed ]]; then
    step_record "$name" passed
  else
    step_record "$name" failed "${results[$name]#failed: }"
  fi
done
steps_write_xml
rm -rf "$work"
steps_failed && exit 1
exit 0
