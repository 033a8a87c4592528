# A cloudha pair on Google Cloud: one node per zone with a fixed internal
# address (so each node's user data can name the other's), firewall rules
# that let only the peer port in between the nodes and the health and
# probe ports from Google's health checkers, and an internal passthrough
# load balancer whose health check (GET /primary on the probe port) passes
# on the serving primary only: the routes of route_cidrs point at it, so
# traffic follows the primary with no API call at failover (Fortinet's
# "ILB sandwich" for FortiGate pairs on Google Cloud works the same way).
# No failover hook runs here, so the nodes' service account has no roles.

locals {
  index = { a = 0, b = 1 }
  peer  = { a = "b", b = "a" }
}

module "certificates" {
  source  = "../certificates"
  cluster = var.name
  given   = var.certificates
}

resource "google_compute_address" "node" {
  for_each     = local.index
  project      = var.project
  region       = var.region
  name         = "${var.name}-${each.key}"
  address_type = "INTERNAL"
  subnetwork   = var.subnetwork
  labels       = var.labels
}

resource "google_compute_address" "ilb" {
  project      = var.project
  region       = var.region
  name         = "${var.name}-ilb"
  address_type = "INTERNAL"
  subnetwork   = var.subnetwork
  labels       = var.labels
}

resource "google_service_account" "node" {
  project      = var.project
  account_id   = "${var.name}-cloudha"
  display_name = "cloudha ${var.name} nodes (no roles: failover needs no API call)"
}

resource "google_compute_firewall" "peer" {
  project                 = var.project
  name                    = "${var.name}-cloudha-peer"
  network                 = var.network
  description             = "cloudha hellos, session and config sync (mutual TLS), between the nodes only"
  source_service_accounts = [google_service_account.node.email]
  target_service_accounts = [google_service_account.node.email]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.ports.peer)]
  }
}

resource "google_compute_firewall" "health" {
  project                 = var.project
  name                    = "${var.name}-cloudha-health"
  network                 = var.network
  description             = "cloudha grpc.health.v1 and HTTP probes from Google's health checkers"
  source_ranges           = var.health_check_ranges
  target_service_accounts = [google_service_account.node.email]
  allow {
    protocol = "tcp"
    ports    = [tostring(var.ports.health), tostring(var.ports.probe)]
  }
}

resource "google_compute_instance" "node" {
  for_each       = local.index
  project        = var.project
  zone           = var.zones[each.value]
  name           = "${var.name}-${each.key}"
  machine_type   = var.machine_type
  can_ip_forward = true # it routes the traffic the load balancer sends it
  labels         = var.labels
  boot_disk {
    initialize_params {
      image = var.image
    }
  }
  network_interface {
    subnetwork = var.subnetwork
    network_ip = google_compute_address.node[each.key].address
  }
  service_account {
    email  = google_service_account.node.email
    scopes = ["cloud-platform"]
  }
  metadata = {
    user-data = templatefile("${path.module}/../../../cloud-init/user-data.yaml.tftpl", {
      hostname                 = "${var.name}-${each.key}"
      cluster                  = var.name
      group_id                 = var.group_id
      node_id                  = each.key
      priority                 = var.priorities[each.value]
      peer_id                  = local.peer[each.key]
      peer_address             = google_compute_address.node[local.peer[each.key]].address
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
    })
  }
}

resource "google_compute_instance_group" "node" {
  for_each  = local.index
  project   = var.project
  zone      = var.zones[each.value]
  name      = "${var.name}-${each.key}"
  network   = var.network
  instances = [google_compute_instance.node[each.key].self_link]
}

# Healthy only on the serving primary: GET /primary answers 200 there and
# 503 everywhere else (health.http_listen). Every second; two misses take a
# node out, one answer puts it in.
resource "google_compute_region_health_check" "primary" {
  project             = var.project
  region              = var.region
  name                = "${var.name}-cloudha-primary"
  check_interval_sec  = 1
  timeout_sec         = 1
  healthy_threshold   = 1
  unhealthy_threshold = 2
  http_health_check {
    port         = var.ports.probe
    request_path = "/primary"
  }
}

resource "google_compute_region_backend_service" "pair" {
  project                         = var.project
  region                          = var.region
  name                            = "${var.name}-cloudha"
  load_balancing_scheme           = "INTERNAL"
  protocol                        = "UNSPECIFIED" # every protocol, as a router needs
  health_checks                   = [google_compute_region_health_check.primary.id]
  connection_draining_timeout_sec = 0
  dynamic "backend" {
    for_each = local.index
    content {
      group          = google_compute_instance_group.node[backend.key].id
      balancing_mode = "CONNECTION"
    }
  }
}

resource "google_compute_forwarding_rule" "pair" {
  project               = var.project
  region                = var.region
  name                  = "${var.name}-cloudha"
  load_balancing_scheme = "INTERNAL"
  ip_protocol           = "L3_DEFAULT"
  all_ports             = true
  ip_address            = google_compute_address.ilb.address
  network               = var.network
  subnetwork            = var.subnetwork
  backend_service       = google_compute_region_backend_service.pair.id
  labels                = var.labels
}

resource "google_compute_route" "via_primary" {
  for_each     = toset(var.route_cidrs)
  project      = var.project
  name         = "${var.name}-cloudha-${replace(replace(each.value, ".", "-"), "/", "-")}"
  network      = var.network
  dest_range   = each.value
  next_hop_ilb = google_compute_forwarding_rule.pair.id
  priority     = 800
}
