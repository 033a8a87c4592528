#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for Azure: points a user-defined route at this
# node's private IP (network virtual appliance failover).
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/azure-route.sh"
#           command: "my-rg" command: "my-route-table" command: "default"
#           command: "10.0.1.4" }
#
# Needs the Azure CLI logged in with a managed identity allowed to write the
# route table. The route table is tagged with the epoch; an older epoch never
# overwrites a newer one.
set -euo pipefail

group=${1:?usage: azure-route.sh RESOURCE_GROUP ROUTE_TABLE ROUTE NEXT_HOP_IP}
table=${2:?usage: azure-route.sh RESOURCE_GROUP ROUTE_TABLE ROUTE NEXT_HOP_IP}
route=${3:?usage: azure-route.sh RESOURCE_GROUP ROUTE_TABLE ROUTE NEXT_HOP_IP}
next_hop=${4:?usage: azure-route.sh RESOURCE_GROUP ROUTE_TABLE ROUTE NEXT_HOP_IP}
epoch=${CLOUDHA_EPOCH:?run by cloudha: CLOUDHA_EPOCH is not set}

log() { echo "azure-route: node=${CLOUDHA_NODE:-?} epoch=$epoch $*"; }

current=$(az network route-table show -g "$group" -n "$table" \
  --query "tags.\"cloudha-epoch\"" -o tsv 2>/dev/null || true)
if [[ "$current" =~ ^[0-9]+$ && "$current" -gt "$epoch" ]]; then
  log "refusing: $table is held at newer epoch $current"
  exit 3
fi

log "routing $route in $table via $next_hop"
az network route-table route update -g "$group" --route-table-name "$table" -n "$route" \
  --next-hop-type VirtualAppliance --next-hop-ip-address "$next_hop" -o none
az network route-table update -g "$group" -n "$table" \
  --set "tags.cloudha-epoch=$epoch" "tags.cloudha-node=${CLOUDHA_NODE:-}" -o none
log "done"
