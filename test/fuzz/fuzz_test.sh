#!/usr/bin/env bash
# Builds the fuzzers (test/fuzz/build.sh), runs each over its corpus
# (test/fuzz/corpus/NAME: seeds and the regression inputs of past
# findings), then lets it fuzz for a few seconds from there. Fails on any
# crash, sanitizer report, leak, failed invariant or input slower than 10 s.
#
#   test/fuzz/fuzz_test.sh [--seconds N] [--out DIR] [FUZZER...]
#
# --seconds  fuzzing time per fuzzer after the corpus (default 8; 0 runs
#            the corpus only)
# --out      the build folder (default ~/.cache/cloudha/fuzz of the user)
#
# As //test/fuzz:fuzz_test (./test.sh) it writes one JUnit testcase per
# fuzzer, and skips them all, with the reason, when clang or libFuzzer is
# missing. New inputs go to a temporary folder, never into the tree; a
# crashing input is kept under the test's outputs (or DIR/artifacts) to add
# to the corpus once fixed. Prints each fuzzer's executions.
set -euo pipefail

if [[ -n "${TEST_SRCDIR:-}" ]]; then
  root=$TEST_SRCDIR/cloudha
else
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fi
fuzzers=(session_codec_fuzzer config_path_fuzzer config_json_fuzzer epoch_store_fuzzer
  agent_config_fuzzer hello_fuzzer config_follower_fuzzer session_replica_fuzzer)
seconds=8
# Under Bazel HOME is unset: the cache goes where the user's Bazel disk
# cache is (.bazelrc), outside the tree, kept from run to run.
home=$(getent passwd "$(id -u)" | cut -d: -f6 || true)
out=${CLOUDHA_FUZZ_OUT:-${home:-${HOME:-/tmp}}/.cache/cloudha/fuzz}
chosen=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -*) echo "usage: $0 [--seconds N] [--out DIR] [FUZZER...]" >&2; exit 1 ;;
    *) chosen+=("$1"); shift ;;
  esac
done
[[ ${#chosen[@]} -gt 0 ]] && fuzzers=("${chosen[@]}")
if ! mkdir -p "$out" 2>/dev/null || [[ ! -w "$out" ]]; then
  out=${TEST_TMPDIR:-/tmp}/cloudha-fuzz
fi
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/fuzz.XXXXXX")
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-$out/artifacts}
mkdir -p "$artifacts"
xml=${XML_OUTPUT_FILE:-$work/test.xml}

# shellcheck source=test/steps.sh
source "$root/test/steps.sh"
steps_init fuzz Fuzz "$xml" "${fuzzers[@]}"
record() { step_record "$@"; }
finish() {
  local rc=$?
  trap - EXIT
  steps_write_xml
  rm -rf "$work"
  steps_failed && exit 1
  exit "$rc"
}
trap finish EXIT

build_rc=0
bin=$("$root/test/fuzz/build.sh" --out "$out" 2>"$work/build.log") || build_rc=$?
if [[ $build_rc -eq 2 ]]; then
  reason=$(tail -n 5 "$work/build.log" | tr '\n' ' ')
  for f in "${fuzzers[@]}"; do record "$f" skipped "$reason"; done
  exit 0
elif [[ $build_rc -ne 0 ]]; then
  tail -n 40 "$work/build.log"
  for f in "${fuzzers[@]}"; do record "$f" failed "the fuzzers do not build (log above)"; done
  exit 1
fi
cat "$work/build.log"

total=0
for f in "${fuzzers[@]}"; do
  corpus=$root/test/fuzz/corpus/$f
  if [[ ! -x "$bin/$f" || ! -d "$corpus" ]]; then
    record "$f" failed "no fuzzer $bin/$f or no corpus $corpus"
    continue
  fi
  options=(-timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1
    -artifact_prefix="$artifacts/$f-")
  dict=$root/test/fuzz/${f%_fuzzer}.dict
  [[ -f "$dict" ]] && options+=(-dict="$dict")
  log=$work/$f.log
  # Every input of the corpus once, then fuzzing from it; new inputs go to
  # the first folder, a temporary one.
  mkdir -p "$work/$f.new"
  if [[ $seconds -gt 0 ]]; then
    options+=(-max_total_time="$seconds" "$work/$f.new")
  else
    options+=(-runs=0)
  fi
  rc=0
  "$bin/$f" "${options[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  inputs=$(find -L "$corpus" -type f | wc -l)
  if [[ $rc -ne 0 ]]; then
    grep -E 'ERROR:|SUMMARY:|fuzz invariant failed|runtime error|Test unit written|deadly signal' "$log" |
      head -n 20 || true
    tail -n 60 "$log"
    record "$f" failed "crashed (exit $rc): $(grep -m 1 -E 'SUMMARY:|fuzz invariant failed|ERROR:' "$log" || echo 'see the log')"
    continue
  fi
  total=$((total + ${runs:-0}))
  record "$f" passed "${runs:-?} executions: $inputs corpus inputs, then ${seconds} s of fuzzing; clean"
done
echo "fuzz: $total executions in all"
