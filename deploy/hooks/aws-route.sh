#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for AWS: points a route of a VPC route table at
# this node's network interface (the usual way to fail over a firewall or NAT
# instance pair).
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/aws-route.sh"
#           command: "rtb-0123456789abcdef0" command: "0.0.0.0/0"
#           command: "eni-0123456789abcdef0" }
#
# Needs the AWS CLI and ec2:ReplaceRoute and ec2:CreateTags. The route table
# is tagged with the epoch; an older epoch never overwrites a newer one.
set -euo pipefail

table=${1:?usage: aws-route.sh ROUTE_TABLE_ID CIDR ENI_ID}
cidr=${2:?usage: aws-route.sh ROUTE_TABLE_ID CIDR ENI_ID}
eni=${3:?usage: aws-route.sh ROUTE_TABLE_ID CIDR ENI_ID}
epoch=${CLOUDHA_EPOCH:?run by cloudha: CLOUDHA_EPOCH is not set}
tag="cloudha-epoch-${cidr//[^0-9a-zA-Z]/-}"

log() { echo "aws-route: node=${CLOUDHA_NODE:-?} epoch=$epoch $*"; }

current=$(aws ec2 describe-tags \
  --filters "Name=resource-id,Values=$table" "Name=key,Values=$tag" \
  --query 'Tags[0].Value' --output text 2>/dev/null || true)
if [[ "$current" =~ ^[0-9]+$ && "$current" -gt "$epoch" ]]; then
  log "refusing: $cidr in $table is held at newer epoch $current"
  exit 3
fi

log "routing $cidr in $table to $eni"
aws ec2 replace-route --route-table-id "$table" --destination-cidr-block "$cidr" \
  --network-interface-id "$eni"
aws ec2 create-tags --resources "$table" --tags "Key=$tag,Value=$epoch"
log "done"
