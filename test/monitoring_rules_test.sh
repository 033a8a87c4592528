#!/usr/bin/env bash
# deploy/monitoring, checked offline: the alerting rules load (promtool check
# rules) and behave as their unit tests say (promtool test rules on
# cloudha-alerts.test.yml), and the unit tests notice a changed threshold;
# the Grafana dashboard is JSON with the datasource, cluster and instance
# variables, its queries and the alerts name only metrics of the agent
# (test/monitoring/metrics.txt) and the queries parse as PromQL (promtool);
# the checker itself fails a broken dashboard, naming each fault.
#
# promtool: $CLOUDHA_PROMTOOL (./test.sh passes the one it unpacked from
# Debian's prometheus package), else promtool on PATH, else the newest one
# unpacked in ~/.cache/cloudha/tools. Without it the promtool steps are
# skipped, with the reason; without Node.js the dashboard checks are.
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/monitoring.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"
checker="$runfiles/test/monitoring/check_dashboard.js"
metrics="$runfiles/test/monitoring/metrics.txt"
# A real folder: promtool reads the rule files next to the test file.
cp -rL "$runfiles/deploy/monitoring" "$work/monitoring"
alerts="$work/monitoring/cloudha-alerts.yml"
dashboard="$work/monitoring/cloudha-dashboard.json"

promtool=${CLOUDHA_PROMTOOL:-}
if [[ -z "$promtool" ]]; then
  home=$(getent passwd "$(id -u)" | cut -d: -f6 || true)
  promtool=$(command -v promtool 2>/dev/null ||
    find "${home:-/root}/.cache/cloudha/tools" -maxdepth 4 -path '*/prometheus_*/usr/bin/promtool' \
      2>/dev/null | sort -V | tail -n 1 || true)
fi
no_promtool=""
[[ -n "$promtool" ]] ||
  no_promtool="promtool not found (./test.sh unpacks Debian's prometheus package into ~/.cache/cloudha/tools; or set CLOUDHA_PROMTOOL)"
no_node=""
command -v node >/dev/null 2>&1 || no_node="node is not installed (apt-get install nodejs)"

checks=(dashboard_checks)
out=""
if [[ -z "$no_node" ]]; then
  out=$(node "$checker" "$metrics" "$dashboard" "$alerts" "$work/dashboard-queries.yml" 2>&1) || true
  mapfile -t checks < <(sed -n 's/^\[\(passed\|failed\)\] \(.*\)$/\2/p' <<<"$out" | sed 's/ :: .*$//')
  [[ ${#checks[@]} -gt 0 ]] || checks=(dashboard_checks)
fi
steps_init monitoring_rules MonitoringRules "$xml" promtool_check_rules promtool_test_rules \
  promtool_tests_catch_a_changed_threshold "${checks[@]}" dashboard_queries_parse checker_finds_broken_dashboard
trap 'steps_write_xml; rm -rf "$work"; steps_failed && exit 1; exit 0' EXIT

# promtool PROMTOOL_ARGS...: runs it, its output in $work/promtool.out.
run_promtool() { "$promtool" "$@" >"$work/promtool.out" 2>&1; }

# The rules and their unit tests.
if [[ -n "$no_promtool" ]]; then
  for step in promtool_check_rules promtool_test_rules promtool_tests_catch_a_changed_threshold; do
    step_record "$step" skipped "$no_promtool"
  done
elif [[ ! -x "$promtool" ]]; then
  for step in promtool_check_rules promtool_test_rules promtool_tests_catch_a_changed_threshold; do
    step_record "$step" failed "$promtool is not an executable file"
  done
  no_promtool="$promtool is not an executable file"
else
  echo "promtool: $promtool ($("$promtool" --version 2>&1 | head -n 1))"
  if run_promtool check rules "$alerts"; then
    step_record promtool_check_rules passed
  else
    step_record promtool_check_rules failed "$(head -c 1500 "$work/promtool.out")"
  fi
  if (cd "$work/monitoring" && run_promtool test rules cloudha-alerts.test.yml); then
    step_record promtool_test_rules passed
  else
    step_record promtool_test_rules failed "$(head -c 3000 "$work/promtool.out")"
  fi
  # The unit tests are live: a lag threshold of 10 s instead of 1 s fails them.
  mkdir "$work/changed"
  cp "$work/monitoring/cloudha-alerts.test.yml" "$work/changed/"
  sed 's/cloudha_peer_sessions_lag_seconds > 1$/cloudha_peer_sessions_lag_seconds > 10/' \
    "$alerts" >"$work/changed/cloudha-alerts.yml"
  if cmp -s "$alerts" "$work/changed/cloudha-alerts.yml"; then
    step_record promtool_tests_catch_a_changed_threshold failed \
      "the rule \"cloudha_peer_sessions_lag_seconds > 1\" is not in cloudha-alerts.yml (update this test)"
  elif (cd "$work/changed" && run_promtool test rules cloudha-alerts.test.yml); then
    step_record promtool_tests_catch_a_changed_threshold failed "promtool test rules passed with the lag threshold at 10 s"
  elif grep -q "CloudhaSessionSyncLag" "$work/promtool.out"; then
    step_record promtool_tests_catch_a_changed_threshold passed
  else
    step_record promtool_tests_catch_a_changed_threshold failed \
      "promtool failed without naming CloudhaSessionSyncLag: $(head -c 800 "$work/promtool.out")"
  fi
fi

# The dashboard.
if [[ -n "$no_node" ]]; then
  step_record dashboard_checks skipped "$no_node"
  step_record dashboard_queries_parse skipped "$no_node"
  step_record checker_finds_broken_dashboard skipped "$no_node"
  exit 0
fi
step_record_checker_lines "$out"
if [[ "${checks[0]}" == dashboard_checks ]]; then
  step_record dashboard_checks failed "the checker printed no checks: $(head -c 800 <<<"$out")"
fi

if [[ -n "$no_promtool" ]]; then
  step_record dashboard_queries_parse skipped "$no_promtool"
elif [[ ! -f "$work/dashboard-queries.yml" ]]; then
  step_record dashboard_queries_parse failed "the checker wrote no queries (the dashboard is not JSON?)"
elif run_promtool check rules "$work/dashboard-queries.yml"; then
  step_record dashboard_queries_parse passed
else
  step_record dashboard_queries_parse failed "$(head -c 1500 "$work/promtool.out")"
fi

# The checker must catch what it claims to: a metric the agent lacks, a
# query without the cluster and instance selectors, a panel on another data
# source, a missing variable; and a file that is not JSON.
broken="$work/broken.json"
# shellcheck disable=SC2016  # JavaScript, and Grafana's variables
node -e '
  const fs = require("fs");
  const d = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const panels = d.panels.filter((p) => p.type !== "row");
  panels[0].targets[0].expr = "rate(cloudha_no_such_metric_total{cluster=\"$cluster\", instance=~\"$instance\"}[5m])";
  panels[1].targets[0].expr = "cloudha_epoch";
  panels[2].datasource = { type: "prometheus", uid: "some-uid" };
  d.templating.list = d.templating.list.filter((v) => v.name !== "instance");
  fs.writeFileSync(process.argv[2], JSON.stringify(d));
' "$dashboard" "$broken"
bad=$(node "$checker" "$metrics" "$broken" "$alerts" "$work/broken-queries.yml" 2>&1) && rc=0 || rc=$?
missing=()
# shellcheck disable=SC2016  # Grafana's variables
for want in "cloudha_no_such_metric_total is not a metric of the agent" \
    'cloudha_epoch is not selected by cluster="$cluster" and instance=~"$instance"' \
    "its datasource is not \${datasource}" 'no query variable "instance"'; do
  grep -qF -- "$want" <<<"$bad" || missing+=("$want")
done
printf '{"panels": [' >"$work/not.json"
not_json=$(node "$checker" "$metrics" "$work/not.json" "$alerts" "$work/not-queries.yml" 2>&1) && rc2=0 || rc2=$?
grep -qF "[failed] dashboard_is_json" <<<"$not_json" || missing+=("[failed] dashboard_is_json")
if [[ $rc -ne 0 && $rc2 -ne 0 && ${#missing[@]} -eq 0 ]]; then
  step_record checker_finds_broken_dashboard passed
else
  step_record checker_finds_broken_dashboard failed \
    "exit $rc and $rc2; not reported: ${missing[*]:-}; output: $(head -c 800 <<<"$bad")"
fi
