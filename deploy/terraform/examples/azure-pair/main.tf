# A cloudha pair in two availability zones, routing a workload subnet's
# default route through whichever node is primary.
#
#   terraform init && terraform apply -var image_id=/subscriptions/.../images/cloudha

terraform {
  required_version = ">= 1.3.0"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 3.100"
    }
  }
}

variable "image_id" {
  type        = string
  description = "The cloudha managed image (Hyper-V generation 1)."
}

provider "azurerm" {
  features {}
}

resource "azurerm_resource_group" "ha" {
  name     = "cloudha-example"
  location = "westeurope"
}

resource "azurerm_virtual_network" "ha" {
  name                = "ha-vnet"
  resource_group_name = azurerm_resource_group.ha.name
  location            = azurerm_resource_group.ha.location
  address_space       = ["10.20.0.0/16"]
}

resource "azurerm_subnet" "ha" {
  name                 = "ha"
  resource_group_name  = azurerm_resource_group.ha.name
  virtual_network_name = azurerm_virtual_network.ha.name
  address_prefixes     = ["10.20.1.0/24"]
}

resource "azurerm_subnet" "workloads" {
  name                 = "workloads"
  resource_group_name  = azurerm_resource_group.ha.name
  virtual_network_name = azurerm_virtual_network.ha.name
  address_prefixes     = ["10.20.2.0/24"]
}

module "pair" {
  source              = "../../modules/azure-pair"
  name                = "fw"
  resource_group_name = azurerm_resource_group.ha.name
  location            = azurerm_resource_group.ha.location
  subnet_id           = azurerm_subnet.ha.id
  image_id            = var.image_id
  ssh_authorized_keys = [file(pathexpand("~/.ssh/id_ed25519.pub"))]
  route_cidrs         = ["0.0.0.0/0"]
  route_subnet_ids    = [azurerm_subnet.workloads.id]
}

output "load_balancer_ip" {
  description = "The address that reaches whichever node is primary."
  value       = module.pair.load_balancer_ip
}
