#!/usr/bin/env bash
# The shipped cloud hook scripts fence by epoch: they claim a resource for the
# epoch cloudha passes, and refuse to take it back for an older epoch. The
# cloud CLIs are replaced by recorders on PATH (no cloud is reachable here);
# what is tested is the scripts' own logic.
set -euo pipefail

hooks="${TEST_SRCDIR}/${TEST_WORKSPACE}/deploy/hooks"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/hooks.XXXXXX")
mkdir -p "$work/bin"
passed=0 failed=0
check() {  # name, command...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else echo "FAIL: $name" >&2; failed=$((failed + 1)); fi
}

# A recorder for the aws CLI: logs its arguments; describe-tags answers with
# the epoch in $work/tag (or None).
cat >"$work/bin/aws" <<'STUB'
#!/usr/bin/env bash
echo "aws $*" >>"$CALLS"
if [[ "$*" == *describe-tags* ]]; then cat "$TAG" 2>/dev/null || echo None; fi
STUB
cat >"$work/bin/az" <<'STUB'
#!/usr/bin/env bash
echo "az $*" >>"$CALLS"
if [[ "$*" == *"route-table show"* ]]; then cat "$TAG" 2>/dev/null || echo; fi
STUB
chmod +x "$work/bin/aws" "$work/bin/az"
export PATH="$work/bin:$PATH" CALLS="$work/calls" TAG="$work/tag"
export CLOUDHA_NODE=a CLOUDHA_REASON="peer b lost"

run() {  # expected exit, script, args...
  local want=$1
  shift
  : >"$CALLS"
  local rc=0
  "$@" >"$work/out" 2>&1 || rc=$?
  [[ $rc -eq $want ]] || { echo "exit $rc, want $want: $*" >&2; cat "$work/out" >&2; return 1; }
}

# No previous claim: associate and tag with our epoch.
rm -f "$TAG"
check "eip claims" run 0 env CLOUDHA_EPOCH=5 "$hooks/aws-eip.sh" eipalloc-1 eni-1
check "eip associates" grep -q "associate-address --allocation-id eipalloc-1 --network-interface-id eni-1" "$CALLS"
check "eip tags the epoch" grep -q "Key=cloudha-epoch,Value=5" "$CALLS"
check "eip logs the epoch" grep -q "epoch=5" "$work/out"

# Held by a newer epoch: refuse, change nothing.
echo 7 >"$TAG"
check "eip refuses an older epoch" run 3 env CLOUDHA_EPOCH=5 "$hooks/aws-eip.sh" eipalloc-1 eni-1
check "eip changed nothing" bash -c "! grep -q associate-address '$CALLS'"

# Held by an older epoch: take it.
echo 4 >"$TAG"
check "eip takes from an older epoch" run 0 env CLOUDHA_EPOCH=5 "$hooks/aws-eip.sh" eipalloc-1 eni-1

echo 9 >"$TAG"
check "route refuses an older epoch" run 3 env CLOUDHA_EPOCH=8 "$hooks/aws-route.sh" rtb-1 0.0.0.0/0 eni-1
rm -f "$TAG"
check "route claims" run 0 env CLOUDHA_EPOCH=8 "$hooks/aws-route.sh" rtb-1 0.0.0.0/0 eni-1
check "route replaces" grep -q "replace-route --route-table-id rtb-1 --destination-cidr-block 0.0.0.0/0 --network-interface-id eni-1" "$CALLS"

echo 9 >"$TAG"
check "azure refuses an older epoch" run 3 env CLOUDHA_EPOCH=8 "$hooks/azure-route.sh" rg rt default 10.0.1.4
echo 8 >"$TAG"
check "azure claims its own epoch again" run 0 env CLOUDHA_EPOCH=8 "$hooks/azure-route.sh" rg rt default 10.0.1.4

check "missing epoch is an error" run 1 env -u CLOUDHA_EPOCH "$hooks/aws-eip.sh" eipalloc-1 eni-1
check "missing arguments are an error" run 1 env CLOUDHA_EPOCH=1 "$hooks/aws-eip.sh"

rm -rf "$work"
echo "hook scripts: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
