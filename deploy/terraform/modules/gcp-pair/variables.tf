variable "name" {
  type        = string
  description = "Prefix of every resource's name, and the cluster's name (cluster.name)."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name: lower-case letters, digits and dashes, starting with a letter, at most 31 characters."
  }
}

variable "group_id" {
  type        = number
  description = "cluster.group_id: clusters sharing a CA must differ in it."
  default     = 1
  validation {
    condition     = var.group_id >= 0 && var.group_id <= 65535 && floor(var.group_id) == var.group_id
    error_message = "group_id: an integer 0-65535."
  }
}

variable "priorities" {
  type        = list(number)
  description = "node.priority of a and b: the higher one becomes primary."
  default     = [200, 100]
  validation {
    condition     = length(var.priorities) == 2 && alltrue([for p in var.priorities : p >= 0 && p <= 255])
    error_message = "priorities: two numbers 0-255."
  }
}

variable "exclude" {
  type        = list(list(string))
  description = "config_sync.exclude of a and b: each zone's paths that must not sync (globs, e.g. system.interface.**)."
  default     = [["system.interface.**", "router.static.**"], ["system.interface.**", "router.static.**"]]
  validation {
    condition     = length(var.exclude) == 2 && alltrue([for l in var.exclude : alltrue([for p in l : can(regex("^[A-Za-z0-9_.*-]+$", p))])])
    error_message = "exclude: two lists of path globs (letters, digits, _ . - and *)."
  }
}

variable "heartbeat" {
  type = object({
    interval_ms    = number
    lost_threshold = number
  })
  description = "Hello interval and how many may be missed before the peer is lost."
  default     = { interval_ms = 200, lost_threshold = 6 }
  validation {
    condition     = var.heartbeat.interval_ms >= 10 && var.heartbeat.interval_ms <= 60000 && var.heartbeat.lost_threshold >= 1 && var.heartbeat.lost_threshold <= 60
    error_message = "heartbeat: interval_ms 10-60000, lost_threshold 1-60."
  }
}

variable "ports" {
  type = object({
    peer   = number
    health = number
    probe  = number
  })
  description = "The mutual-TLS peer port, the plaintext grpc.health.v1 port and the HTTP probe port (GET /primary)."
  default     = { peer = 7801, health = 7901, probe = 7902 }
  validation {
    condition     = alltrue([for p in [var.ports.peer, var.ports.health, var.ports.probe] : p > 0 && p < 65536]) && length(distinct([var.ports.peer, var.ports.health, var.ports.probe])) == 3
    error_message = "ports: three different ports 1-65535."
  }
}

variable "certificates" {
  type = object({
    ca_crt  = string
    a_crt   = string
    a_key   = string
    b_crt   = string
    b_key   = string
  })
  description = "PEM files of cloudha certs init --cluster NAME --nodes a,b (recommended: the keys stay out of the Terraform state only if you pass them from a secret store). null: the module generates them with the tls provider, and the keys live in the state."
  default     = null
  sensitive   = true
  validation {
    condition = var.certificates == null || alltrue([
      for pem in [var.certificates.ca_crt, var.certificates.a_crt, var.certificates.a_key, var.certificates.b_crt, var.certificates.b_key] :
      can(regex("-----BEGIN [A-Z ]+-----", pem))
    ])
    error_message = "certificates: PEM text of ca.crt, a.crt, a.key, b.crt and b.key."
  }
}

variable "ssh_authorized_keys" {
  type        = list(string)
  description = "SSH keys of the image's user debian (sudo)."
  default     = []
  validation {
    condition     = alltrue([for k in var.ssh_authorized_keys : can(regex("^(ssh-|ecdsa-|sk-)[^\\n]+$", k))])
    error_message = "ssh_authorized_keys: public keys in OpenSSH format, one line each."
  }
}

variable "project" {
  type        = string
  description = "The Google Cloud project."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project: a project id."
  }
}

variable "region" {
  type        = string
  description = "The region of both zones."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: a region such as europe-west1."
  }
}

variable "zones" {
  type        = list(string)
  description = "Two zones of the region: node a goes in the first, node b in the second."
  validation {
    condition     = length(var.zones) == 2 && var.zones[0] != var.zones[1] && alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "zones: two different zones such as europe-west1-b."
  }
}

variable "network" {
  type        = string
  description = "The VPC network (name or self link)."
  validation {
    condition     = length(var.network) > 0
    error_message = "network: a network name or self link."
  }
}

variable "subnetwork" {
  type        = string
  description = "The regional subnetwork of both nodes and the load balancer (name or self link)."
  validation {
    condition     = length(var.subnetwork) > 0
    error_message = "subnetwork: a subnetwork name or self link."
  }
}

variable "image" {
  type        = string
  description = "The cloudha image (deploy/image/build-image.sh, uploaded as disk.raw in a .tar.gz and created with gcloud compute images create)."
  validation {
    condition     = length(var.image) > 0
    error_message = "image: an image name or self link."
  }
}

variable "machine_type" {
  type        = string
  description = "Machine type of both nodes (x86_64)."
  default     = "e2-small"
  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type: a machine type such as e2-small."
  }
}

variable "route_cidrs" {
  type        = list(string)
  description = "Destinations routed through the internal load balancer, so to whichever node is primary (e.g. 0.0.0.0/0 for a firewall pair)."
  default     = []
  validation {
    condition     = alltrue([for c in var.route_cidrs : can(cidrhost(c, 0))])
    error_message = "route_cidrs: CIDR blocks."
  }
}

variable "health_check_ranges" {
  type        = list(string)
  description = "Where Google Cloud's health checks come from (the health and probe ports are open to these only)."
  default     = ["35.191.0.0/16", "130.211.0.0/22"]
  validation {
    condition     = alltrue([for c in var.health_check_ranges : can(cidrhost(c, 0))])
    error_message = "health_check_ranges: CIDR blocks."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels of every resource that takes them."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels: lower-case keys and values (letters, digits, _ and -)."
  }
}
