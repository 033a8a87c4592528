# A cloudha pair on AWS: one node per availability zone, each with a fixed
# network interface (so each node's user data can name the other's
# address), a security group that lets only the peer port in between the
# nodes and the health port from the health checkers, an instance role
# with the narrowest permissions the failover hooks need, and the failover
# resources: an Elastic IP and/or routes that the primary holds.

locals {
  nodes = ["a", "b"]
  peer  = { a = "b", b = "a" }
  index = { a = 0, b = 1 }
  hooks_dir = "/usr/share/cloudha/hooks"
  recheck   = var.recheck_s > 0 ? " recheck_s: ${var.recheck_s}" : ""
  eip_hook = var.eip ? join(" ", [
    "hooks { on: TO_PRIMARY command: \"${local.hooks_dir}/aws-eip.sh\"",
    "command: \"--allocation-id\" command: \"${aws_eip.primary[0].allocation_id}\"",
    "timeout_ms: 120000${local.recheck} }",
  ]) : ""
  route_hook = length(var.route_table_ids) > 0 ? join(" ", concat(
    ["hooks { on: TO_PRIMARY command: \"${local.hooks_dir}/aws-route.sh\""],
    [for t in var.route_table_ids : "command: \"--route-table\" command: \"${t}\""],
    ["command: \"--cidr\" command: \"${var.route_cidr}\" timeout_ms: 300000${local.recheck} }"],
  )) : ""
  extra_config = trimspace(join(" ", [local.eip_hook, local.route_hook]))
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_subnet" "node" {
  for_each = local.index
  id       = var.subnet_ids[each.value]
}

# Certificates passed in, or made by the tls provider (the private keys are
# then in the Terraform state).
module "certificates" {
  source  = "../certificates"
  cluster = var.name
  given   = var.certificates
}

# Only the peer port between the nodes, the health port from the checkers.
resource "aws_security_group" "node" {
  name        = "${var.name}-cloudha"
  description = "cloudha ${var.name}: peer port between the nodes, health port from health checkers"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "peer" {
  security_group_id            = aws_security_group.node.id
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = var.ports.peer
  to_port                      = var.ports.peer
  description                  = "cloudha hellos, session and config sync (mutual TLS)"
}

resource "aws_vpc_security_group_ingress_rule" "health" {
  for_each          = toset(var.health_check_cidrs)
  security_group_id = aws_security_group.node.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.ports.health
  to_port           = var.ports.health
  description       = "cloudha grpc.health.v1 probes"
}

resource "aws_vpc_security_group_ingress_rule" "probe" {
  for_each          = toset(var.health_check_cidrs)
  security_group_id = aws_security_group.node.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.ports.probe
  to_port           = var.ports.probe
  description       = "cloudha HTTP probes (GET /primary)"
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.node.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "the peer, cloud APIs (hooks), package mirrors"
}

# Fixed interfaces: each node's user data names the other's address.
resource "aws_network_interface" "node" {
  for_each          = local.index
  subnet_id         = var.subnet_ids[each.value]
  security_groups   = [aws_security_group.node.id]
  source_dest_check = false
  description       = "cloudha ${var.name} node ${each.key}"
  tags              = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_eip" "primary" {
  count  = var.eip ? 1 : 0
  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-primary" })
}

# The hooks' permissions, nothing more: reading tags, tagging and moving
# this pair's address and routes.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  arn_prefix = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  eip_arns   = var.eip ? ["${local.arn_prefix}:elastic-ip/${aws_eip.primary[0].allocation_id}"] : []
  rtb_arns   = [for t in var.route_table_ids : "${local.arn_prefix}:route-table/${t}"]
  eni_arns   = [for n in local.nodes : "${local.arn_prefix}:network-interface/${aws_network_interface.node[n].id}"]
}

data "aws_iam_policy_document" "hooks" {
  statement {
    sid       = "ReadClaims"
    actions   = ["ec2:DescribeTags"]
    resources = ["*"] # DescribeTags supports no resource-level permissions
  }
  dynamic "statement" {
    for_each = var.eip || length(var.route_table_ids) > 0 ? [1] : []
    content {
      sid       = "WriteClaims"
      actions   = ["ec2:CreateTags"]
      resources = concat(local.eip_arns, local.rtb_arns)
    }
  }
  dynamic "statement" {
    for_each = var.eip ? [1] : []
    content {
      sid       = "MoveAddress"
      actions   = ["ec2:AssociateAddress"]
      resources = concat(local.eip_arns, local.eni_arns)
    }
  }
  dynamic "statement" {
    for_each = length(var.route_table_ids) > 0 ? [1] : []
    content {
      sid       = "MoveRoutes"
      actions   = ["ec2:ReplaceRoute"]
      resources = local.rtb_arns
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-cloudha"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "hooks" {
  name   = "cloudha-hooks"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.hooks.json
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-cloudha"
  role = aws_iam_role.node.name
  tags = var.tags
}

resource "aws_instance" "node" {
  for_each             = local.index
  ami                  = var.ami_id
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.node.name
  network_interface {
    network_interface_id = aws_network_interface.node[each.key].id
    device_index         = 0
  }
  metadata_options {
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # not from containers on the node
  }
  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/../../../cloud-init/user-data.yaml.tftpl", {
    hostname                 = "${var.name}-${each.key}"
    cluster                  = var.name
    group_id                 = var.group_id
    node_id                  = each.key
    priority                 = var.priorities[each.value]
    peer_id                  = local.peer[each.key]
    peer_address             = aws_network_interface.node[local.peer[each.key]].private_ip
    peer_port                = var.ports.peer
    health_port              = var.ports.health
    probe_port               = var.ports.probe
    heartbeat_interval_ms    = var.heartbeat.interval_ms
    heartbeat_lost_threshold = var.heartbeat.lost_threshold
    exclude                  = jsonencode(var.exclude[each.value])
    extra_config             = local.extra_config
    ssh_authorized_keys      = jsonencode(var.ssh_authorized_keys)
    ca_crt_b64               = base64encode(module.certificates.ca_crt)
    node_crt_b64             = base64encode(module.certificates.node_crt[each.key])
    node_key_b64             = base64encode(module.certificates.node_key[each.key])
  })
  tags = merge(var.tags, { Name = "${var.name}-${each.key}", "cloudha-node" = each.key })
  lifecycle {
    precondition {
      condition     = data.aws_subnet.node["a"].availability_zone != data.aws_subnet.node["b"].availability_zone
      error_message = "subnet_ids must be in two different availability zones."
    }
  }
}
