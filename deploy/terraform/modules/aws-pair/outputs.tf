output "instance_ids" {
  description = "The nodes' instance ids, by node (a, b)."
  value       = { for n, i in aws_instance.node : n => i.id }
}

output "private_ips" {
  description = "The nodes' private addresses, by node."
  value       = { for n, e in aws_network_interface.node : n => e.private_ip }
}

output "network_interface_ids" {
  description = "The nodes' network interfaces, by node."
  value       = { for n, e in aws_network_interface.node : n => e.id }
}

output "primary_public_ip" {
  description = "The Elastic IP the primary holds (null without eip)."
  value       = var.eip ? aws_eip.primary[0].public_ip : null
}

output "security_group_id" {
  description = "The nodes' security group."
  value       = aws_security_group.node.id
}

output "role_arn" {
  description = "The nodes' IAM role (the hooks' permissions)."
  value       = aws_iam_role.node.arn
}

output "ca_certificate" {
  description = "The cluster CA's certificate (PEM), to verify the nodes."
  value       = module.certificates.ca_crt
}
