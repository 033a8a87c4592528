# A cloudha pair in two zones of a region, routing the default route of the
# VPC through whichever node is primary.
#
#   terraform init && terraform apply -var project=my-project -var image=cloudha-0-1-0

terraform {
  required_version = ">= 1.3.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.20"
    }
  }
}

variable "project" {
  type        = string
  description = "The project."
}

variable "image" {
  type        = string
  description = "The uploaded cloudha image."
}

provider "google" {
  project = var.project
  region  = "europe-west1"
}

module "pair" {
  source      = "../../modules/gcp-pair"
  name        = "fw"
  project     = var.project
  region      = "europe-west1"
  zones       = ["europe-west1-b", "europe-west1-c"]
  network     = "ha-vpc"
  subnetwork  = "ha-subnet"
  image       = var.image
  route_cidrs = ["0.0.0.0/0"]
  exclude = [
    ["system.interface.**", "router.static.**"],
    ["system.interface.**", "router.static.**"],
  ]
}

output "load_balancer_ip" {
  description = "The address that reaches whichever node is primary."
  value       = module.pair.load_balancer_ip
}
