output "instance_ids" {
  description = "The nodes' instance ids, by node (a, b)."
  value       = { for n, i in google_compute_instance.node : n => i.instance_id }
}

output "private_ips" {
  description = "The nodes' internal addresses, by node."
  value       = { for n, a in google_compute_address.node : n => a.address }
}

output "load_balancer_ip" {
  description = "The internal load balancer's address: it reaches whichever node is primary."
  value       = google_compute_address.ilb.address
}

output "service_account" {
  description = "The nodes' service account."
  value       = google_service_account.node.email
}

output "ca_certificate" {
  description = "The cluster CA's certificate (PEM), to verify the nodes."
  value       = module.certificates.ca_crt
}
