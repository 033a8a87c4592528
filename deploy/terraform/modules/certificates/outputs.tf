output "ca_crt" {
  description = "The CA certificate (PEM)."
  value       = local.generate ? tls_self_signed_cert.ca[0].cert_pem : var.given.ca_crt
}

output "node_crt" {
  description = "Each node's certificate (PEM), by node id."
  value = local.generate ? { for n, c in tls_locally_signed_cert.node : n => c.cert_pem } : {
    a = var.given.a_crt
    b = var.given.b_crt
  }
}

output "node_key" {
  description = "Each node's private key (PEM), by node id."
  sensitive   = true
  value = local.generate ? { for n, k in tls_private_key.node : n => k.private_key_pem } : {
    a = var.given.a_key
    b = var.given.b_key
  }
}
