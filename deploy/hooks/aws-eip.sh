#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for AWS: moves an Elastic IP to this instance.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/aws-eip.sh"
#           command: "eipalloc-0123456789abcdef0" command: "eni-0123456789abcdef0" }
#
# Arguments: the EIP allocation id, and the network interface (ENI) of this
# node that should carry it. Needs the AWS CLI and an instance role allowing
# ec2:AssociateAddress and ec2:CreateTags. cloudha retries a failing hook
# (retries, backoff_ms) and gives the role up if it keeps failing.
#
# Fencing: the association is tagged with cloudha's epoch. A node that lost
# the role in a partition runs this hook with an older epoch; it refuses to
# take the address back from a newer epoch's holder.
set -euo pipefail

allocation=${1:?usage: aws-eip.sh ALLOCATION_ID ENI_ID}
eni=${2:?usage: aws-eip.sh ALLOCATION_ID ENI_ID}
epoch=${CLOUDHA_EPOCH:?run by cloudha: CLOUDHA_EPOCH is not set}

log() { echo "aws-eip: node=${CLOUDHA_NODE:-?} epoch=$epoch $*"; }

current=$(aws ec2 describe-tags \
  --filters "Name=resource-id,Values=$allocation" "Name=key,Values=cloudha-epoch" \
  --query 'Tags[0].Value' --output text 2>/dev/null || true)
if [[ "$current" =~ ^[0-9]+$ && "$current" -gt "$epoch" ]]; then
  log "refusing: the address is held at newer epoch $current"
  exit 3
fi

log "associating $allocation with $eni (reason: ${CLOUDHA_REASON:-})"
aws ec2 associate-address --allocation-id "$allocation" --network-interface-id "$eni" \
  --allow-reassociation --output text >/dev/null
aws ec2 create-tags --resources "$allocation" \
  --tags "Key=cloudha-epoch,Value=$epoch" "Key=cloudha-node,Value=${CLOUDHA_NODE:-}"
log "done"
