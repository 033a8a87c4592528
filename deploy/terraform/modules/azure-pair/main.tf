# A cloudha pair on Azure: one VM per availability zone, a Standard internal
# load balancer with an HA-ports rule whose probe (GET /primary on the probe
# port) passes on the serving primary only, and a route table that sends
# route_cidrs to the load balancer, so traffic follows the primary with no
# API call at failover (Azure's pattern for highly available network
# virtual appliances). A network security group lets the peer port in only
# between the nodes (an application security group) and the health and
# probe ports only from the load balancer. No failover hook runs, so the
# VMs need no identity.

locals {
  index = { a = 0, b = 1 }
  peer  = { a = "b", b = "a" }
}

module "certificates" {
  source  = "../certificates"
  cluster = var.name
  given   = var.certificates
}

resource "azurerm_application_security_group" "node" {
  name                = "${var.name}-cloudha"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_network_security_group" "node" {
  name                = "${var.name}-cloudha"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags

  security_rule {
    name                                       = "cloudha-peer"
    description                                = "cloudha hellos, session and config sync (mutual TLS), between the nodes"
    priority                                   = 100
    direction                                  = "Inbound"
    access                                     = "Allow"
    protocol                                   = "Tcp"
    source_port_range                          = "*"
    destination_port_range                     = tostring(var.ports.peer)
    source_application_security_group_ids      = [azurerm_application_security_group.node.id]
    destination_application_security_group_ids = [azurerm_application_security_group.node.id]
  }
  security_rule {
    name                       = "cloudha-peer-others"
    description                = "nobody else reaches the peer port (the default rules allow the whole VNet)"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = tostring(var.ports.peer)
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
  security_rule {
    name                       = "cloudha-probes"
    description                = "the load balancer's probes (GET /primary) and grpc.health.v1"
    priority                   = 120
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_ranges    = [tostring(var.ports.health), tostring(var.ports.probe)]
    source_address_prefix      = "AzureLoadBalancer"
    destination_address_prefix = "*"
  }
  security_rule {
    name                       = "cloudha-probes-others"
    description                = "nobody else reaches the plaintext health and probe ports"
    priority                   = 130
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_ranges    = [tostring(var.ports.health), tostring(var.ports.probe)]
    source_address_prefix      = "*"
    destination_address_prefix = "*"
  }
}

# Dynamic addresses, known once the interfaces exist: each VM's user data
# names the other's.
resource "azurerm_network_interface" "node" {
  for_each             = local.index
  name                 = "${var.name}-${each.key}"
  resource_group_name  = var.resource_group_name
  location             = var.location
  enable_ip_forwarding = true # it routes what the load balancer sends it
  tags                 = var.tags
  ip_configuration {
    name                          = "primary"
    subnet_id                     = var.subnet_id
    private_ip_address_allocation = "Dynamic"
  }
}

resource "azurerm_network_interface_security_group_association" "node" {
  for_each                  = local.index
  network_interface_id      = azurerm_network_interface.node[each.key].id
  network_security_group_id = azurerm_network_security_group.node.id
}

resource "azurerm_network_interface_application_security_group_association" "node" {
  for_each                      = local.index
  network_interface_id          = azurerm_network_interface.node[each.key].id
  application_security_group_id = azurerm_application_security_group.node.id
}

resource "azurerm_linux_virtual_machine" "node" {
  for_each                        = local.index
  name                            = "${var.name}-${each.key}"
  resource_group_name             = var.resource_group_name
  location                        = var.location
  zone                            = var.zones[each.value]
  size                            = var.vm_size
  source_image_id                 = var.image_id
  network_interface_ids           = [azurerm_network_interface.node[each.key].id]
  admin_username                  = "debian"
  disable_password_authentication = true
  tags                            = var.tags
  admin_ssh_key {
    username   = "debian"
    public_key = var.ssh_authorized_keys[0]
  }
  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "StandardSSD_ZRS"
  }
  custom_data = base64encode(templatefile("${path.module}/../../../cloud-init/user-data.yaml.tftpl", {
    hostname                 = "${var.name}-${each.key}"
    cluster                  = var.name
    group_id                 = var.group_id
    node_id                  = each.key
    priority                 = var.priorities[each.value]
    peer_id                  = local.peer[each.key]
    peer_address             = azurerm_network_interface.node[local.peer[each.key]].private_ip_address
    peer_port                = var.ports.peer
    health_port              = var.ports.health
    probe_port               = var.ports.probe
    heartbeat_interval_ms    = var.heartbeat.interval_ms
    heartbeat_lost_threshold = var.heartbeat.lost_threshold
    exclude                  = jsonencode(var.exclude[each.value])
    extra_config             = ""
    ssh_authorized_keys      = jsonencode(var.ssh_authorized_keys)
    ca_crt_b64               = base64encode(module.certificates.ca_crt)
    node_crt_b64             = base64encode(module.certificates.node_crt[each.key])
    node_key_b64             = base64encode(module.certificates.node_key[each.key])
  }))
}

resource "azurerm_lb" "pair" {
  name                = "${var.name}-cloudha"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "Standard"
  tags                = var.tags
  frontend_ip_configuration {
    name                          = "primary"
    subnet_id                     = var.subnet_id
    private_ip_address_allocation = "Dynamic"
    zones                         = ["1", "2", "3"]
  }
}

resource "azurerm_lb_backend_address_pool" "pair" {
  name            = "nodes"
  loadbalancer_id = azurerm_lb.pair.id
}

resource "azurerm_network_interface_backend_address_pool_association" "node" {
  for_each                = local.index
  network_interface_id    = azurerm_network_interface.node[each.key].id
  ip_configuration_name   = "primary"
  backend_address_pool_id = azurerm_lb_backend_address_pool.pair.id
}

# Healthy only on the serving primary: GET /primary answers 200 there, 503
# elsewhere (health.http_listen). Azure probes every 5 s at the least.
resource "azurerm_lb_probe" "primary" {
  name                = "cloudha-primary"
  loadbalancer_id     = azurerm_lb.pair.id
  protocol            = "Http"
  port                = var.ports.probe
  request_path        = "/primary"
  interval_in_seconds = 5
  number_of_probes    = 1
}

# HA ports: every protocol and port goes to the healthy node.
resource "azurerm_lb_rule" "all" {
  name                           = "cloudha-ha-ports"
  loadbalancer_id                = azurerm_lb.pair.id
  protocol                       = "All"
  frontend_port                  = 0
  backend_port                   = 0
  frontend_ip_configuration_name = "primary"
  backend_address_pool_ids       = [azurerm_lb_backend_address_pool.pair.id]
  probe_id                       = azurerm_lb_probe.primary.id
  load_distribution              = "SourceIPProtocol"
}

resource "azurerm_route_table" "via_primary" {
  count               = length(var.route_cidrs) > 0 ? 1 : 0
  name                = "${var.name}-cloudha"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
  dynamic "route" {
    for_each = var.route_cidrs
    content {
      name                   = "cloudha-${replace(replace(route.value, ".", "-"), "/", "-")}"
      address_prefix         = route.value
      next_hop_type          = "VirtualAppliance"
      next_hop_in_ip_address = azurerm_lb.pair.frontend_ip_configuration[0].private_ip_address
    }
  }
}

resource "azurerm_subnet_route_table_association" "via_primary" {
  for_each       = length(var.route_cidrs) > 0 ? toset(var.route_subnet_ids) : toset([])
  subnet_id      = each.value
  route_table_id = azurerm_route_table.via_primary[0].id
}
