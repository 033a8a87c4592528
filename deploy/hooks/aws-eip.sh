#!/usr/bin/env bash
# cloudha TO_PRIMARY hook for AWS: moves an Elastic IP to this instance.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/aws-eip.sh"
#           command: "--allocation-id" command: "eipalloc-0123456789abcdef0" }
#
#   aws-eip.sh --allocation-id ID [--eni ENI_ID] [--region REGION]
#
# --eni defaults to this instance's primary network interface and --region
# to its region, both from the instance metadata (IMDSv2). Needs the AWS
# CLI and an instance role allowing ec2:DescribeTags, ec2:CreateTags and
# ec2:AssociateAddress on the address (deploy/hooks/README.md has the policy).
#
# Fencing, as atomic as EC2 allows (it has no conditional tagging): the
# address's tag cloudha-epoch holds the claim (EPOCH, or EPOCH/FENCE with an
# arbiter). The hook refuses a claim newer than its own, writes its own,
# associates, then reads the claim back: if a newer primary claimed it
# meanwhile, this hook fails (exit 3) and the newer one's association
# stands (it runs after ours or its periodic re-run puts it back). Any
# failed call fails the hook before anything later is done.
set -euo pipefail
hook=aws-eip
# shellcheck source=deploy/hooks/cloud-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cloud-lib.sh"

allocation="" eni="" region=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --allocation-id) [[ $# -ge 2 ]] || usage "--allocation-id ID"; allocation=$2; shift 2 ;;
    --eni) [[ $# -ge 2 ]] || usage "--eni ENI_ID"; eni=$2; shift 2 ;;
    --region) [[ $# -ge 2 ]] || usage "--region REGION"; region=$2; shift 2 ;;
    *) usage "--allocation-id ID [--eni ENI_ID] [--region REGION]" ;;
  esac
done
[[ -n "$allocation" ]] || usage "--allocation-id ID [--eni ENI_ID] [--region REGION]"
[[ -n "$region" ]] || region=$(aws_region)
[[ -n "$eni" ]] || eni=$(aws_primary_eni)

read_claim() {
  cloud aws ec2 describe-tags --region "$region" \
    --filters "Name=resource-id,Values=$allocation" "Name=key,Values=cloudha-epoch" \
    --query 'Tags[0].Value' --output text
}
write_claim() {
  cloud aws ec2 create-tags --region "$region" --resources "$allocation" \
    --tags "Key=cloudha-epoch,Value=$(claim)" "Key=cloudha-node,Value=${CLOUDHA_NODE:-}" >/dev/null
}
associate() {
  cloud aws ec2 associate-address --region "$region" --allocation-id "$allocation" \
    --network-interface-id "$eni" --allow-reassociation --output text >/dev/null
}
fenced "$allocation" read_claim write_claim associate
log "done: $allocation on $eni in $region"
