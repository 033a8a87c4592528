#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for Google Cloud: points a static route at this
# instance.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/gcp-route.sh"
#           command: "--network" command: "ha-vpc" command: "--cidr" command: "0.0.0.0/0" }
#
#   gcp-route.sh --network NETWORK --cidr CIDR [--instance NAME] [--zone ZONE]
#                [--project PROJECT] [--priority N]
#
# --instance, --zone and --project default to this instance's (metadata
# server). Needs compute.routes.list, compute.routes.create,
# compute.routes.delete, compute.networks.updatePolicy and
# compute.instances.use (deploy/hooks/README.md has the custom role).
#
# Fencing: routes cannot be changed in place, so the epoch is in the route's
# name, cloudha-NETWORK-CIDR-eEPOCH (zero-padded, so names sort as epochs).
# The epoch only: a route name has no room for the arbiter's fencing token
# (epochs rise across the cluster too).
# The hook refuses when a route of a newer epoch exists, creates its own,
# lists again and deletes only routes of older epochs, and fails (exit 3)
# if a newer one appeared meanwhile, leaving it in place (with equal
# priorities, Google Cloud spreads traffic over both until the older goes).
set -euo pipefail
hook=gcp-route
# shellcheck source=deploy/hooks/cloud-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cloud-lib.sh"

network="" cidr="" instance="" zone="" project="" priority=100
syntax="--network NETWORK --cidr CIDR [--instance NAME] [--zone ZONE] [--project PROJECT] [--priority N]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --network) [[ $# -ge 2 ]] || usage "$syntax"; network=$2; shift 2 ;;
    --cidr) [[ $# -ge 2 ]] || usage "$syntax"; cidr=$2; shift 2 ;;
    --instance) [[ $# -ge 2 ]] || usage "$syntax"; instance=$2; shift 2 ;;
    --zone) [[ $# -ge 2 ]] || usage "$syntax"; zone=$2; shift 2 ;;
    --project) [[ $# -ge 2 ]] || usage "$syntax"; project=$2; shift 2 ;;
    --priority) [[ $# -ge 2 ]] || usage "$syntax"; priority=$2; shift 2 ;;
    *) usage "$syntax" ;;
  esac
done
[[ -n "$network" && -n "$cidr" ]] || usage "$syntax"
[[ -n "$instance" ]] || instance=$(gcp_metadata instance/name)
[[ -n "$zone" ]] || { zone=$(gcp_metadata instance/zone); zone=${zone##*/}; }
[[ -n "$project" ]] || project=$(gcp_metadata project/project-id)
prefix="cloudha-${network}-${cidr//[^0-9a-zA-Z]/-}"
# 16 digits: epochs stop at 2^53 (cloudha's ceiling), so names sort as epochs.
name=$(printf '%s-e%016d' "$prefix" "$((10#$epoch))")
[[ ${#name} -le 63 ]] || fail 1 "route name $name is longer than 63 characters (shorten the network name)"

routes() {
  cloud gcloud compute routes list --project="$project" \
    --filter="name ~ ^${prefix}-e[0-9]+\$" --format='value(name)'
}
newer_than_ours() {  # ROUTES: the first route of a newer epoch, if any
  local route
  for route in $1; do
    if [[ "$route" > "$name" ]]; then echo "$route"; return; fi
  done
}

existing=$(routes)
newer=$(newer_than_ours "$existing")
[[ -z "$newer" ]] || fail 3 "refusing: $newer belongs to a newer epoch"
if ! grep -qx "$name" <<<"$existing"; then
  log "creating $name: $cidr via $instance ($zone)"
  cloud gcloud compute routes create "$name" --project="$project" --network="$network" \
    --destination-range="$cidr" --next-hop-instance="$instance" \
    --next-hop-instance-zone="$zone" --priority="$priority" --quiet >/dev/null
fi
after=$(routes)
newer=$(newer_than_ours "$after")
if [[ -n "$newer" ]]; then
  # Ours must not split traffic with the newer one: removed (best effort;
  # the newer primary deletes it too on its next run).
  timeout "$call_timeout" gcloud compute routes delete "$name" --project="$project" --quiet \
    >/dev/null 2>&1 || log "could not delete $name"
  fail 3 "a newer epoch's route $newer appeared meanwhile; leaving it, $name deleted"
fi
for old in $after; do
  if [[ "$old" < "$name" ]]; then
    log "deleting $old (older epoch)"
    cloud gcloud compute routes delete "$old" --project="$project" --quiet >/dev/null
  fi
done
log "done: $cidr via $instance"
