// What a reload of the configuration file may change while the agent runs,
// and the helpers both start-up and reload use to apply those sections.
//
// Live: `heartbeat` (interval and threshold: loss windows, hello pace,
// vote window and handover timeout follow; gRPC keepalives keep the values
// the channels were made with), `log` (level, format), `hooks` (role and peer hooks: events whose
// hooks have not started run the new ones), `monitors` (unchanged ones keep
// their state), `config_sync.exclude` (replication streams restart with the
// new list). Every other section (node, cluster, peers, listen,
// election, tls paths, sessions, the rest of config_sync, arbiter, ...) is
// fixed for the life of the process: a file that changes one is refused
// whole.
#ifndef CLOUDHA_AGENT_RELOAD_PLAN_H_
#define CLOUDHA_AGENT_RELOAD_PLAN_H_

#include <string>
#include <vector>

#include "base/log.h"
#include "cloudha/v1/config.pb.h"

namespace cloudha {

struct ReloadPlan {
  // Changed sections (AgentConfig's top-level field names), in field order.
  std::vector<std::string> applied;  // live
  std::vector<std::string> refused;  // need a restart
  // The sections a reload applies live.
  static const std::vector<std::string>& Live();
};

// Compares `current` and `next` section by section. A pure function.
ReloadPlan PlanReload(const v1::AgentConfig& current, const v1::AgentConfig& next);

// Role hooks (TO_PRIMARY, TO_SECONDARY, TO_FAULT) and peer hooks
// (PEER_LOST, PEER_FOUND), which run on runners of their own.
void SplitHooks(const v1::AgentConfig& config, std::vector<v1::HookConfig>* role,
                std::vector<v1::HookConfig>* peer);

LogLevel ToLogLevel(v1::LogConfig::Level level);
LogFormat ToLogFormat(v1::LogConfig::Format format);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_RELOAD_PLAN_H_
