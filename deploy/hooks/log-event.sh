#!/usr/bin/env bash
# A cloudha hook for any event that writes one line to syslog (and so to the
# journal): useful as a first hook, and to see what cloudha passes.
#
#   hooks { on: TO_PRIMARY command: "/usr/share/cloudha/hooks/log-event.sh" }
#   hooks { on: PEER_LOST  command: "/usr/share/cloudha/hooks/log-event.sh" }
set -euo pipefail
logger -t cloudha-hook -- "event=${CLOUDHA_EVENT:-} node=${CLOUDHA_NODE:-}" \
  "role=${CLOUDHA_ROLE:-} prev=${CLOUDHA_PREV_ROLE:-} epoch=${CLOUDHA_EPOCH:-}" \
  "peer=${CLOUDHA_PEER:-} reason=\"${CLOUDHA_REASON:-}\""
