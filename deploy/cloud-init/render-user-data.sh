#!/usr/bin/env bash
# Renders cloud-init user data from a template with ${name} interpolations
# (default deploy/cloud-init/user-data.yaml.tftpl), as Terraform's
# templatefile() would, for those who deploy without Terraform:
#
#   deploy/cloud-init/render-user-data.sh [--template FILE] [--vars FILE] NAME=VALUE... > user-data
#
# NAME=@FILE gives the base64 of FILE's bytes (for the *_b64 variables).
# --vars FILE reads NAME=VALUE lines from FILE (# starts a comment line);
# arguments given after it override them.
# Every ${name} of the template must be given and every NAME given must be
# in the template; a value may not span lines. Example, node a of a pair:
#
#   deploy/cloud-init/render-user-data.sh hostname=ha-a cluster=prod group_id=7 \
#     node_id=a priority=200 peer_id=b peer_address=10.0.2.10 peer_port=7801 \
#     health_port=7901 heartbeat_interval_ms=200 heartbeat_lost_threshold=6 \
#     'exclude=["system.interface.**", "router.static.**"]' \
#     'ssh_authorized_keys=["ssh-ed25519 AAAA... you@host"]' \
#     ca_crt_b64=@pki/ca.crt node_crt_b64=@pki/a.crt node_key_b64=@pki/a.key > user-data-a
set -euo pipefail

template="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/user-data.yaml.tftpl"
die() { echo "render-user-data.sh: $*" >&2; exit 1; }
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --template) [[ $# -ge 2 ]] || die "--template needs a file"; template=$2; shift 2 ;;
    --vars)
      [[ $# -ge 2 && -r "$2" ]] || die "--vars needs a readable file"
      while IFS= read -r line; do
        [[ -z "$line" || "$line" == \#* ]] || args+=("$line")
      done <"$2"
      shift 2 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ -r "$template" ]] || die "cannot read the template $template"

declare -A values=()
for arg in ${args[@]+"${args[@]}"}; do
  [[ "$arg" == *=* ]] || die "not NAME=VALUE: $arg"
  name=${arg%%=*}
  value=${arg#*=}
  [[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || die "not a variable name: $name"
  if [[ "$value" == @* ]]; then
    [[ -r "${value#@}" ]] || die "$name: cannot read ${value#@}"
    value=$(base64 -w0 <"${value#@}")
  fi
  [[ "$value" != *$'\n'* ]] || die "$name: a value may not span lines (give lists as JSON, files as @FILE)"
  values[$name]=$value
done

# The template's variables, each once.
# shellcheck disable=SC2016  # the patterns match a literal ${
mapfile -t wanted < <(grep -o '\${[a-z][a-z0-9_]*}' "$template" | sed 's/^\${//; s/}$//' | sort -u)
declare -A in_template=()
for name in "${wanted[@]}"; do
  in_template[$name]=1
  [[ -v "values[$name]" ]] || die "missing $name=... (the template uses \${$name})"
done
for name in "${!values[@]}"; do
  [[ -v "in_template[$name]" ]] || die "the template has no \${$name}"
done
# shellcheck disable=SC2016
if grep -q '\${[^}]*[^a-z0-9_}][^}]*}\|%{' "$template"; then
  die "$template uses interpolations or directives other than \${name}; render it with Terraform"
fi

# Substitute in one pass (a value containing "${...}" stays as it is).
{
  for name in "${!values[@]}"; do printf '%s\t%s\n' "$name" "${values[$name]}"; done
  printf '\f\n'
  cat "$template"
} | awk '
  BEGIN { in_template = 0 }
  !in_template && $0 == "\f" { in_template = 1; next }
  !in_template { tab = index($0, "\t"); value[substr($0, 1, tab - 1)] = substr($0, tab + 1); next }
  {
    line = $0; result = ""
    while (match(line, /\$\{[a-z][a-z0-9_]*\}/)) {
      result = result substr(line, 1, RSTART - 1) value[substr(line, RSTART + 2, RLENGTH - 3)]
      line = substr(line, RSTART + RLENGTH)
    }
    print result line
  }'
