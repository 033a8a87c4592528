#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for Azure: points a user-defined route at this
# VM, in one or more route tables.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/azure-route.sh"
#           command: "--route-table" command: "ha-rt" command: "--route" command: "default" }
#
#   azure-route.sh --route-table NAME [--route-table NAME...] --route NAME
#                  [--resource-group GROUP] [--next-hop IP]
#
# --resource-group defaults to this VM's and --next-hop to the private IP of
# its first interface (instance metadata). Needs the Azure CLI, logged in
# with the VM's managed identity (az login --identity), allowed
# Microsoft.Network/routeTables/read and write and routeTables/routes/read
# and write on the tables (deploy/hooks/README.md has the role).
#
# Fencing per table, as in aws-eip.sh: the table's tag cloudha-epoch-ROUTE
# holds the claim; a newer one is refused, ours is written, the route
# updated, the claim read back.
set -euo pipefail
hook=azure-route
# shellcheck source=deploy/hooks/cloud-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cloud-lib.sh"

tables=() route="" group="" next_hop=""
syntax="--route-table NAME [--route-table NAME...] --route NAME [--resource-group GROUP] [--next-hop IP]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --route-table) [[ $# -ge 2 ]] || usage "$syntax"; tables+=("$2"); shift 2 ;;
    --route) [[ $# -ge 2 ]] || usage "$syntax"; route=$2; shift 2 ;;
    --resource-group) [[ $# -ge 2 ]] || usage "$syntax"; group=$2; shift 2 ;;
    --next-hop) [[ $# -ge 2 ]] || usage "$syntax"; next_hop=$2; shift 2 ;;
    *) usage "$syntax" ;;
  esac
done
[[ ${#tables[@]} -gt 0 && -n "$route" ]] || usage "$syntax"
[[ -n "$group" ]] || group=$(azure_metadata compute/resourceGroupName)
[[ -n "$next_hop" ]] ||
  next_hop=$(azure_metadata network/interface/0/ipv4/ipAddress/0/privateIpAddress)
tag="cloudha-epoch-${route//[^0-9a-zA-Z]/-}"

# The functions fenced calls, for the table in $table.
read_claim() {
  cloud az network route-table show -g "$group" -n "$table" --query "tags.\"$tag\"" -o tsv
}
write_claim() {
  cloud az network route-table update -g "$group" -n "$table" \
    --set "tags.$tag=$(claim)" -o none >/dev/null
}
update_route() {
  cloud az network route-table route update -g "$group" --route-table-name "$table" -n "$route" \
    --next-hop-type VirtualAppliance --next-hop-ip-address "$next_hop" -o none >/dev/null
}
for table in "${tables[@]}"; do
  fenced "$route in $table" read_claim write_claim update_route
done
log "done: $route via $next_hop in ${tables[*]}"
