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

variable "vpc_id" {
  type        = string
  description = "The VPC of both nodes."
  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id: a VPC id (vpc-...)."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Two subnets in two availability zones: node a goes in the first, node b in the second. Peers talk over these addresses."
  validation {
    condition     = length(var.subnet_ids) == 2 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids: exactly two subnet ids (subnet-...), one per zone."
  }
}

variable "ami_id" {
  type        = string
  description = "The cloudha image (deploy/image/build-image.sh, imported with aws ec2 import-snapshot and register-image --boot-mode legacy-bios)."
  validation {
    condition     = can(regex("^ami-[0-9a-f]+$", var.ami_id))
    error_message = "ami_id: an AMI id (ami-...)."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type of both nodes (x86_64, BIOS boot)."
  default     = "t3.small"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type: an instance type such as t3.small."
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

variable "health_check_cidrs" {
  type        = list(string)
  description = "Where health checks come from (the health and probe ports are open to these only)."
  default     = []
  validation {
    condition     = alltrue([for c in var.health_check_cidrs : can(cidrhost(c, 0))])
    error_message = "health_check_cidrs: CIDR blocks."
  }
}

variable "eip" {
  type        = bool
  description = "Create an Elastic IP that the primary holds (hook aws-eip.sh)."
  default     = true
}

variable "route_table_ids" {
  type        = list(string)
  description = "Route tables whose route to route_cidr the primary holds (hook aws-route.sh); empty: none."
  default     = []
  validation {
    condition     = alltrue([for t in var.route_table_ids : can(regex("^rtb-[0-9a-f]+$", t))])
    error_message = "route_table_ids: route table ids (rtb-...)."
  }
}

variable "route_cidr" {
  type        = string
  description = "The destination the primary routes (with route_table_ids)."
  default     = "0.0.0.0/0"
  validation {
    condition     = can(cidrhost(var.route_cidr, 0))
    error_message = "route_cidr: a CIDR block."
  }
}

variable "recheck_s" {
  type        = number
  description = "Seconds between re-runs of the failover hooks while primary (hooks[].recheck_s); 0: never."
  default     = 60
  validation {
    condition     = var.recheck_s == 0 || (var.recheck_s >= 5 && var.recheck_s <= 86400)
    error_message = "recheck_s: 0, or 5-86400."
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

variable "tags" {
  type        = map(string)
  description = "Tags of every resource."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.tags : length(k) > 0 && length(k) <= 128 && length(v) <= 256])
    error_message = "tags: keys of 1-128 characters, values of at most 256."
  }
}
