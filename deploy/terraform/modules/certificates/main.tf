# The cluster's CA and node certificates for the pair modules, as
# `cloudha certs init` makes them (ECDSA P-256, URI SAN
# cloudha://CLUSTER/NODE, serverAuth and clientAuth), or the ones given.

locals {
  generate = var.given == null
  index    = { for i, n in var.nodes : n => i }
}

resource "tls_private_key" "ca" {
  count       = local.generate ? 1 : 0
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  count                 = local.generate ? 1 : 0
  private_key_pem       = tls_private_key.ca[0].private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 3650
  allowed_uses          = ["cert_signing", "crl_signing"]
  subject {
    common_name = "cloudha CA ${var.cluster}"
  }
}

resource "tls_private_key" "node" {
  for_each    = local.generate ? local.index : {}
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "node" {
  for_each        = local.generate ? local.index : {}
  private_key_pem = tls_private_key.node[each.key].private_key_pem
  uris            = ["cloudha://${var.cluster}/${each.key}"]
  dns_names       = ["${each.key}.${var.cluster}.cloudha"]
  subject {
    common_name = "${each.key}.${var.cluster}"
  }
}

resource "tls_locally_signed_cert" "node" {
  for_each              = local.generate ? local.index : {}
  cert_request_pem      = tls_cert_request.node[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca[0].private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca[0].cert_pem
  validity_period_hours = 24 * var.validity_days
  allowed_uses          = ["digital_signature", "server_auth", "client_auth"]
}
