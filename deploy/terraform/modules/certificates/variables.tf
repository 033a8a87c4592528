variable "cluster" {
  type        = string
  description = "The cluster's name: the certificates say cloudha://CLUSTER/NODE."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.cluster))
    error_message = "cluster: lower-case letters, digits and dashes, starting with a letter, at most 31 characters."
  }
}

variable "nodes" {
  type        = list(string)
  description = "The nodes' ids."
  default     = ["a", "b"]
  validation {
    condition     = length(var.nodes) >= 1 && alltrue([for n in var.nodes : can(regex("^[a-z0-9][a-z0-9-]{0,30}$", n))])
    error_message = "nodes: ids of lower-case letters, digits and dashes."
  }
}

variable "given" {
  type = object({
    ca_crt  = string
    a_crt   = string
    a_key   = string
    b_crt   = string
    b_key   = string
  })
  description = "PEM files of cloudha certs init --cluster CLUSTER --nodes a,b to pass through; null generates them here (the private keys are then in the Terraform state)."
  default     = null
  sensitive   = true
  validation {
    condition = var.given == null || alltrue([
      for pem in [var.given.ca_crt, var.given.a_crt, var.given.a_key, var.given.b_crt, var.given.b_key] :
      can(regex("-----BEGIN [A-Z ]+-----", pem))
    ])
    error_message = "given: PEM text of ca.crt, a.crt, a.key, b.crt and b.key."
  }
}

variable "validity_days" {
  type        = number
  description = "Lifetime of generated node certificates (the CA gets ten years)."
  default     = 825
  validation {
    condition     = var.validity_days >= 1 && var.validity_days <= 3650
    error_message = "validity_days: 1-3650."
  }
}
