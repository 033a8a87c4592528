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

variable "resource_group_name" {
  type        = string
  description = "The resource group of every resource."
  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name))
    error_message = "resource_group_name: 1-90 letters, digits, _ - . ( )."
  }
}

variable "location" {
  type        = string
  description = "The Azure region (with availability zones)."
  validation {
    condition     = can(regex("^[a-z0-9]+$", var.location))
    error_message = "location: a region name such as westeurope."
  }
}

variable "zones" {
  type        = list(string)
  description = "Two availability zones: node a goes in the first, node b in the second."
  default     = ["1", "2"]
  validation {
    condition     = length(var.zones) == 2 && var.zones[0] != var.zones[1] && alltrue([for z in var.zones : contains(["1", "2", "3"], z)])
    error_message = "zones: two different zones of 1, 2, 3."
  }
}

variable "subnet_id" {
  type        = string
  description = "The subnet of both nodes and the load balancer's frontend."
  validation {
    condition     = can(regex("^/subscriptions/.+/subnets/[^/]+$", var.subnet_id))
    error_message = "subnet_id: a subnet resource id (/subscriptions/.../subnets/NAME)."
  }
}

variable "image_id" {
  type        = string
  description = "The cloudha image as a managed image of Hyper-V generation 1 (deploy/image/build-image.sh, converted to a fixed VHD)."
  validation {
    condition     = can(regex("^/subscriptions/.+/images/[^/]+$", var.image_id))
    error_message = "image_id: a managed image id (/subscriptions/.../images/NAME)."
  }
}

variable "vm_size" {
  type        = string
  description = "VM size of both nodes (generation 1, x86_64)."
  default     = "Standard_B2s"
  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.vm_size))
    error_message = "vm_size: a size such as Standard_B2s."
  }
}

variable "route_cidrs" {
  type        = list(string)
  description = "Destinations routed through the load balancer, so to whichever node is primary, in a route table associated with route_subnet_ids."
  default     = []
  validation {
    condition     = alltrue([for c in var.route_cidrs : can(cidrhost(c, 0))])
    error_message = "route_cidrs: CIDR blocks."
  }
}

variable "route_subnet_ids" {
  type        = list(string)
  description = "Subnets whose traffic to route_cidrs goes through the primary (the route table is associated with them)."
  default     = []
  validation {
    condition     = alltrue([for s in var.route_subnet_ids : can(regex("^/subscriptions/.+/subnets/[^/]+$", s))])
    error_message = "route_subnet_ids: subnet resource ids."
  }
}

variable "ssh_authorized_keys" {
  type        = list(string)
  description = "SSH keys of the image's user debian (sudo); Azure needs at least one."
  validation {
    condition     = length(var.ssh_authorized_keys) >= 1 && alltrue([for k in var.ssh_authorized_keys : can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-)[^\\n]+$", k))])
    error_message = "ssh_authorized_keys: at least one public key in OpenSSH format."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of every resource."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.tags : length(k) > 0 && length(k) <= 512 && length(v) <= 256])
    error_message = "tags: keys of 1-512 characters, values of at most 256."
  }
}
