#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for AWS: points a VPC route at this instance, in
# one or more route tables.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/aws-route.sh"
#           command: "--route-table" command: "rtb-0123456789abcdef0"
#           command: "--route-table" command: "rtb-0fedcba9876543210"
#           command: "--cidr" command: "0.0.0.0/0" }
#
#   aws-route.sh --route-table ID [--route-table ID...] --cidr CIDR [--eni ENI_ID] [--region REGION]
#
# --eni defaults to this instance's primary network interface and --region
# to its region (instance metadata, IMDSv2). Needs ec2:DescribeTags,
# ec2:CreateTags and ec2:ReplaceRoute on the route tables.
#
# Fencing per route table, as in aws-eip.sh: the table's tag
# cloudha-epoch-CIDR holds the claim; a newer claim is refused, ours is
# written, the route replaced, the claim read back. Tables are done in the
# order given; the first failure ends the hook (the tables before it point
# here, the ones after are untouched) and cloudha's retry runs it again
# from the start, which is harmless: each step is idempotent.
set -euo pipefail
hook=aws-route
# shellcheck source=deploy/hooks/cloud-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cloud-lib.sh"

tables=() cidr="" eni="" region=""
syntax="--route-table ID [--route-table ID...] --cidr CIDR [--eni ENI_ID] [--region REGION]"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --route-table) [[ $# -ge 2 ]] || usage "$syntax"; tables+=("$2"); shift 2 ;;
    --cidr) [[ $# -ge 2 ]] || usage "$syntax"; cidr=$2; shift 2 ;;
    --eni) [[ $# -ge 2 ]] || usage "$syntax"; eni=$2; shift 2 ;;
    --region) [[ $# -ge 2 ]] || usage "$syntax"; region=$2; shift 2 ;;
    *) usage "$syntax" ;;
  esac
done
[[ ${#tables[@]} -gt 0 && -n "$cidr" ]] || usage "$syntax"
[[ -n "$region" ]] || region=$(aws_region)
[[ -n "$eni" ]] || eni=$(aws_primary_eni)
tag="cloudha-epoch-${cidr//[^0-9a-zA-Z]/-}"

# The functions fenced calls, for the table in $table.
read_claim() {
  cloud aws ec2 describe-tags --region "$region" \
    --filters "Name=resource-id,Values=$table" "Name=key,Values=$tag" \
    --query 'Tags[0].Value' --output text
}
write_claim() {
  cloud aws ec2 create-tags --region "$region" --resources "$table" \
    --tags "Key=$tag,Value=$(claim)" >/dev/null
}
replace_route() {
  cloud aws ec2 replace-route --region "$region" --route-table-id "$table" \
    --destination-cidr-block "$cidr" --network-interface-id "$eni" >/dev/null
}
for table in "${tables[@]}"; do
  fenced "$cidr in $table" read_claim write_claim replace_route
done
log "done: $cidr to $eni in ${tables[*]}"
