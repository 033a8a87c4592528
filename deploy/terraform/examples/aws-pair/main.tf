# A cloudha pair in two availability zones of an existing VPC, holding an
# Elastic IP and the default route of two private route tables.
#
#   terraform init && terraform apply -var vpc_id=vpc-... \
#     -var 'subnet_ids=["subnet-...","subnet-..."]' -var ami_id=ami-... \
#     -var 'route_table_ids=["rtb-...","rtb-..."]'

terraform {
  required_version = ">= 1.3.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
  }
}

variable "region" {
  type        = string
  description = "AWS region."
  default     = "eu-west-1"
}

variable "vpc_id" {
  type        = string
  description = "The VPC."
}

variable "subnet_ids" {
  type        = list(string)
  description = "One subnet in each of two zones."
}

variable "ami_id" {
  type        = string
  description = "The imported cloudha image."
}

variable "route_table_ids" {
  type        = list(string)
  description = "Route tables whose default route the primary holds."
  default     = []
}

provider "aws" {
  region = var.region
}

module "pair" {
  source             = "../../modules/aws-pair"
  name               = "fw"
  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  ami_id             = var.ami_id
  route_table_ids    = var.route_table_ids
  route_cidr         = "0.0.0.0/0"
  health_check_cidrs = ["10.0.0.0/16"]
  # Zone-local settings: each zone keeps its own interfaces and routes.
  exclude = [
    ["system.interface.**", "router.static.**", "firewall.vip.**"],
    ["system.interface.**", "router.static.**", "firewall.vip.**"],
  ]
  tags = { project = "cloudha-example" }
}

output "primary_public_ip" {
  description = "Where clients reach whichever node is primary."
  value       = module.pair.primary_public_ip
}

output "private_ips" {
  description = "The nodes' private addresses."
  value       = module.pair.private_ips
}
