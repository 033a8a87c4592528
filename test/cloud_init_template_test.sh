#!/usr/bin/env bash
# deploy/cloud-init: the user data template renders into what the VM needs.
# Renders it with real certificates (cloudha certs init), takes the files
# cloud-init would write out of the YAML, and runs cloudha check-config on
# them exactly as the unit does; checks that the example agrees with its
# variables, and that render-user-data.sh refuses what would render wrong.
# (cloud-init's own schema check runs in the image build, with the image's
# cloud-init, and on the booted VMs in test/vm_image_test.sh.)
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
dir="$runfiles/deploy/cloud-init"
cloudha="$runfiles/agent/cli/cloudha"
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/cloud-init.XXXXXX")
xml=${XML_OUTPUT_FILE:-$work/test.xml}
steps=(example_agrees rendered_config_checks missing_variable_refused
  unknown_variable_refused multiline_value_refused)
# shellcheck source=test/steps.sh
source "$runfiles/test/steps.sh"
steps_init cloud_init_template CloudInitTemplate "$xml" "${steps[@]}"
trap 'steps_write_xml; rm -rf "$work"; steps_failed && exit 1; exit 0' EXIT

render() { "$dir/render-user-data.sh" "$@"; }
vars=("hostname=ha-a" "cluster=prod" "group_id=7" "node_id=a" "priority=200" "peer_id=b"
  "peer_address=10.0.2.10" "peer_port=7801" "health_port=7901" "probe_port=7902"
  "heartbeat_interval_ms=200"
  "heartbeat_lost_threshold=6" 'exclude=["system.interface.**", "router.static.**"]'
  'extra_config=monitors { name: "up" exec { command: "/bin/true" } }'
  'ssh_authorized_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test@host"]')

if render --vars "$dir/example-user-data.vars" | diff -u "$dir/example-user-data.yaml" - >"$work/diff"; then
  step_record example_agrees passed
else
  step_record example_agrees failed "example-user-data.yaml is not what its .vars render: $(head -c 600 "$work/diff")"
fi

# The files of write_files, as cloud-init writes them: an indented block
# (content: |) or one base64 line (encoding: b64).
extract() {  # USER_DATA PATH: the content of PATH's entry
  awk -v want="$2" '
    /^  - path: / { path = $3; block = 0; next }
    path == want && /^    encoding: b64/ { b64 = 1; next }
    path == want && /^    content: \|/ { block = 1; next }
    path == want && /^    content: / { sub(/^    content: /, ""); print; exit }
    block && path == want { if ($0 ~ /^      / || $0 == "") { sub(/^      /, ""); print } else exit }
  ' "$1"
}
"$cloudha" certs init --cluster prod --nodes a,b --out "$work/pki" >/dev/null
render "${vars[@]}" ca_crt_b64=@"$work/pki/ca.crt" node_crt_b64=@"$work/pki/a.crt" \
  node_key_b64=@"$work/pki/a.key" >"$work/user-data"
mkdir -p "$work/etc/certs"
extract "$work/user-data" /etc/cloudha/agent.textproto >"$work/etc/agent.textproto"
for f in ca.crt node.crt node.key; do
  extract "$work/user-data" "/etc/cloudha/certs/$f" | base64 -d >"$work/etc/certs/$f"
done
chmod 600 "$work/etc/certs/node.key"
if ! cmp -s "$work/etc/certs/node.key" "$work/pki/a.key"; then
  step_record rendered_config_checks failed "the key in the user data is not a.key"
elif ! grep -q 'config_sync { exclude: \["system.interface.\*\*", "router.static.\*\*"\] }' \
    "$work/etc/agent.textproto"; then
  step_record rendered_config_checks failed "no exclusion list in: $(cat "$work/etc/agent.textproto")"
elif "$cloudha" check-config "$work/etc/agent.textproto" >"$work/check" 2>&1; then
  step_record rendered_config_checks passed
else
  step_record rendered_config_checks failed "check-config: $(cat "$work/check")"
fi

refused() {  # STEP WANTED_MESSAGE ARGS...
  local step=$1 want=$2
  shift 2
  if render "$@" >"$work/out" 2>"$work/err"; then
    step_record "$step" failed "rendered anyway"
  elif grep -q -- "$want" "$work/err"; then
    step_record "$step" passed
  else
    step_record "$step" failed "wrong message: $(cat "$work/err")"
  fi
}
refused missing_variable_refused 'missing node_key_b64=' "${vars[@]}" ca_crt_b64=x node_crt_b64=x
# shellcheck disable=SC2016  # a literal ${colour}
refused unknown_variable_refused 'the template has no ${colour}' "${vars[@]}" ca_crt_b64=x \
  node_crt_b64=x node_key_b64=x colour=blue
refused multiline_value_refused 'may not span lines' "${vars[@]}" ca_crt_b64=x node_crt_b64=x \
  node_key_b64=x "hostname=a
b"
