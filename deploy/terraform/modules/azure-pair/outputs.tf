output "vm_ids" {
  description = "The nodes' VM ids, by node (a, b)."
  value       = { for n, v in azurerm_linux_virtual_machine.node : n => v.id }
}

output "private_ips" {
  description = "The nodes' private addresses, by node."
  value       = { for n, i in azurerm_network_interface.node : n => i.private_ip_address }
}

output "load_balancer_ip" {
  description = "The internal load balancer's address: it reaches whichever node is primary."
  value       = azurerm_lb.pair.frontend_ip_configuration[0].private_ip_address
}

output "route_table_id" {
  description = "The route table of route_cidrs (null without route_cidrs)."
  value       = length(var.route_cidrs) > 0 ? azurerm_route_table.via_primary[0].id : null
}

output "ca_certificate" {
  description = "The cluster CA's certificate (PEM), to verify the nodes."
  value       = module.certificates.ca_crt
}
