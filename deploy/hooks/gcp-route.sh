#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for Google Cloud: moves a static route's next hop
# to this instance. GCP routes cannot be edited, so the route is recreated
# under a name that carries the epoch, and older cloudha routes for the same
# destination are deleted afterwards (newest epoch wins).
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/gcp-route.sh"
#           command: "my-network" command: "0.0.0.0/0"
#           command: "fw-a" command: "europe-west1-b" }
#
# Needs gcloud and compute.routes.create/delete/list.
set -euo pipefail

network=${1:?usage: gcp-route.sh NETWORK CIDR INSTANCE ZONE}
cidr=${2:?usage: gcp-route.sh NETWORK CIDR INSTANCE ZONE}
instance=${3:?usage: gcp-route.sh NETWORK CIDR INSTANCE ZONE}
zone=${4:?usage: gcp-route.sh NETWORK CIDR INSTANCE ZONE}
epoch=${CLOUDHA_EPOCH:?run by cloudha: CLOUDHA_EPOCH is not set}
prefix="cloudha-${network}-${cidr//[^0-9a-zA-Z]/-}"
name=$(printf '%s-e%012d' "$prefix" "$epoch" | cut -c1-63)

log() { echo "gcp-route: node=${CLOUDHA_NODE:-?} epoch=$epoch $*"; }

newest=$(gcloud compute routes list --filter="name ~ ^${prefix}-e" --format='value(name)' |
  sort | tail -n 1)
if [[ -n "$newest" && "$newest" > "$name" ]]; then
  log "refusing: $newest belongs to a newer epoch"
  exit 3
fi

log "creating $name: $cidr via $instance"
gcloud compute routes create "$name" --network="$network" --destination-range="$cidr" \
  --next-hop-instance="$instance" --next-hop-instance-zone="$zone" --priority=100 --quiet
for old in $(gcloud compute routes list --filter="name ~ ^${prefix}-e" --format='value(name)'); do
  [[ "$old" < "$name" ]] && gcloud compute routes delete "$old" --quiet
done
log "done"
