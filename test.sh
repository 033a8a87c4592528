#!/usr/bin/env bash
# Installs what is missing, builds, runs every test, and ends with one line:
#   tests: N passed, M failed[, K skipped]
# Exit code 0 only when nothing failed.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=deploy/debian-packages.sh
source deploy/debian-packages.sh
cloudha_install_packages
# Commands from packages that are unpacked into the user's cache, never
# installed (deploy/debian-packages.txt, "unpack:"): promtool, from Debian's
# prometheus package, for //test:monitoring_rules_test, which is told where
# it is and skips its promtool steps without it (the function says why).
cloudha_unpack_tools || true
test_env=(--test_env=CLOUDHA_PROMTOOL="${CLOUDHA_TOOL_PATHS[promtool]:-}")

# The npm packages of the Terraform checks (test/terraform/package-lock.json),
# in the user's cache; without the npm registry those checks are skipped.
npm_dir=${HOME:-/root}/.cache/cloudha/npm/terraform-check
if ! cmp -s test/terraform/package-lock.json "$npm_dir/package-lock.json" 2>/dev/null ||
    [[ ! -d "$npm_dir/node_modules/@cdktf/hcl2json" ]]; then
  mkdir -p "$npm_dir"
  cp test/terraform/package.json test/terraform/package-lock.json "$npm_dir/"
  if ! (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    rm -f "$npm_dir/package-lock.json"
    echo "note: npm ci of test/terraform failed (no npm registry?): the Terraform checks are skipped" >&2
  fi
fi

stamp=$(mktemp)
summary=$(mktemp)
trap 'rm -f "$stamp" "$summary"' EXIT
sleep 1  # test.xml files written from now on are newer than the stamp

bazel_rc=0
# Every test runs every time (no cached results): this is the suite's verdict.
set +e
bazel test //... --cache_test_results=no "${test_env[@]}" "$@" 2>&1 | tee "$summary"
bazel_rc=${PIPESTATUS[0]}
set -e
# Targets Bazel itself failed (a timeout, a crash): their test.xml may list
# only passing cases (a script writes it as it goes), so they count apart.
bad_targets=$(grep -E '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$summary" |
  awk '{print $1}' | sort -u || true)

passed=0 failed=0 skipped=0
testlogs=$(bazel info bazel-testlogs 2>/dev/null)
while IFS= read -r label; do
  [[ -z "$label" ]] && continue
  path=${label#//}
  xml="$testlogs/${path/://}/test.xml"
  if [[ ! -f "$xml" || ! "$xml" -nt "$stamp" ]]; then
    echo "not run (did not build): $label" >&2
    failed=$((failed + 1))
    continue
  fi
  # One record per XML tag; a testcase fails on a <failure> or <error>
  # inside it and is skipped when gtest says so (named on stderr, with why).
  read -r p f s < <(awk -v label="$label" '
    BEGIN { RS = "<"; open = 0 }
    function finish() {
      if (bad) failed++
      else if (skip) { skipped++; printf "skipped: %s %s%s\n", label, name, why > "/dev/stderr" }
      else passed++
      open = 0
    }
    /^testcase[ \t\r\n]/ {
      if (open) finish()
      open = 1; bad = 0; skip = ($0 ~ /result="skipped"/); why = ""
      name = $0; sub(/^.*[ \t\r\n]name="/, "", name); sub(/".*/, "", name)
      if ($0 ~ /\/>[ \t\r\n]*$/) finish()
      next
    }
    /^(failure|error)[ \t\r\n>\/]/ { if (open) bad = 1; next }
    /^skipped[ \t\r\n>\/]/ {
      if (!open) next
      skip = 1
      if (match($0, /message="[^"]*"/)) {
        why = substr($0, RSTART + 9, RLENGTH - 10)
        gsub(/&#x0A;|&#10;/, " ", why); gsub(/&quot;/, "\"", why); gsub(/&lt;/, "<", why)
        gsub(/&gt;/, ">", why); gsub(/&amp;/, "\\&", why)
        why = ": " why
      }
      next
    }
    /^\/testcase>/ { if (open) finish(); next }
    END { if (open) finish(); printf "%d %d %d\n", passed, failed, skipped }
  ' "$xml")
  if [[ $f -eq 0 ]] && grep -qxF "$label" <<<"$bad_targets"; then
    echo "failed (timed out or crashed; see its test.log): $label" >&2
    f=1
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done < <(bazel query 'tests(//...)' --output=label 2>/dev/null)

if [[ $bazel_rc -ne 0 && $bazel_rc -ne 3 && $failed -eq 0 ]]; then
  echo "bazel failed (exit $bazel_rc) before any test could fail" >&2
  failed=1
fi
line="tests: $passed passed, $failed failed"
[[ $skipped -gt 0 ]] && line+=", $skipped skipped"
echo "$line"
[[ $failed -eq 0 ]]
