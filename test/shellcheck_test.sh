#!/usr/bin/env bash
# Every shell script of cloudha passes shellcheck (warnings included; with
# -x, so sourced files are read too). One JUnit testcase per script; all
# skipped, with the reason, when shellcheck is missing.
#
#   test/shellcheck_test.sh SCRIPT...   (paths relative to the tree's root)
set -euo pipefail

root="${TEST_SRCDIR:+$TEST_SRCDIR/$TEST_WORKSPACE}"
root=${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/shellcheck.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
# shellcheck source=test/steps.sh
source "$root/test/steps.sh"
steps_init shellcheck Shellcheck "$xml" "$@"
trap 'steps_write_xml; rm -rf "$work"; steps_failed && exit 1; exit 0' EXIT

if ! command -v shellcheck >/dev/null 2>&1; then
  for script in "$@"; do step_record "$script" skipped "shellcheck is not installed (apt-get install shellcheck)"; done
  exit 0
fi
for script in "$@"; do
  if shellcheck -x "$script" >"$work/out" 2>&1; then
    step_record "$script" passed
  else
    step_record "$script" failed "$(head -c 1500 "$work/out")"
  fi
done
