# shellcheck shell=bash
# Steps of a script test, each reported as one JUnit testcase (./test.sh
# counts them). Sourced, not run:
#
#   source "$runfiles/test/steps.sh"
#   steps_init SUITE CLASSNAME XML_FILE STEP...
#   step_record STEP passed|failed|skipped [MESSAGE]   # also prints it
#   steps_write_xml        # a step never recorded counts as failed
#   steps_failed           # true when any step failed
#
# Uses the globals steps_names, steps_result, steps_message.

steps_init() {
  steps_suite=$1
  steps_class=$2
  steps_xml=$3
  shift 3
  steps_names=("$@")
  declare -gA steps_result=() steps_message=()
}

step_record() {
  steps_result[$1]=$2
  steps_message[$1]=${3:-}
  echo "[$2] $1${3:+: $3}"
}

# Records the steps a checker printed as "[passed] NAME" and
# "[failed] NAME :: WHY" lines (the JavaScript checkers' output).
step_record_checker_lines() {  # OUTPUT
  local line
  while IFS= read -r line; do
    if [[ "$line" =~ ^\[passed\]\ (.*)$ ]]; then
      step_record "${BASH_REMATCH[1]}" passed
    elif [[ "$line" =~ ^\[failed\]\ (.*)\ ::\ (.*)$ ]]; then
      step_record "${BASH_REMATCH[1]}" failed "${BASH_REMATCH[2]}"
    fi
  done <<<"$1"
}

steps_write_xml() {
  local step failures=0 skips=0 escaped
  for step in "${steps_names[@]}"; do
    [[ -n "${steps_result[$step]:-}" ]] ||
      step_record "$step" failed "not reached (an earlier step failed)"
    [[ ${steps_result[$step]} == failed ]] && failures=$((failures + 1))
    [[ ${steps_result[$step]} == skipped ]] && skips=$((skips + 1))
  done
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuites><testsuite name=\"$steps_suite\" tests=\"${#steps_names[@]}\" failures=\"$failures\" skipped=\"$skips\">"
    for step in "${steps_names[@]}"; do
      escaped=$(sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' <<<"${steps_message[$step]}")
      case ${steps_result[$step]} in
        passed) echo "<testcase name=\"$step\" classname=\"$steps_class\"/>" ;;
        skipped) echo "<testcase name=\"$step\" classname=\"$steps_class\"><skipped message=\"$escaped\"/></testcase>" ;;
        *) echo "<testcase name=\"$step\" classname=\"$steps_class\"><failure message=\"$escaped\"/></testcase>" ;;
      esac
    done
    echo "</testsuite></testsuites>"
  } >"$steps_xml"
}

steps_failed() {
  local step
  for step in "${steps_names[@]}"; do
    [[ ${steps_result[$step]:-failed} == failed ]] && return 0
  done
  return 1
}
