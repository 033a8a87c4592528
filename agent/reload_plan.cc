#include "agent/reload_plan.h"

#include <algorithm>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"

namespace cloudha {

const std::vector<std::string>& ReloadPlan::Live() {
  static const std::vector<std::string>* live =
      new std::vector<std::string>{"heartbeat", "log", "hooks", "monitors",
                                   "config_sync.exclude"};
  return *live;
}

ReloadPlan PlanReload(const v1::AgentConfig& current, const v1::AgentConfig& next) {
  ReloadPlan plan;
  const google::protobuf::Descriptor* d = v1::AgentConfig::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = d->field(i);
    // Both sides with only this field left.
    v1::AgentConfig a = current;
    v1::AgentConfig b = next;
    for (int j = 0; j < d->field_count(); ++j) {
      if (j == i) continue;
      a.GetReflection()->ClearField(&a, d->field(j));
      b.GetReflection()->ClearField(&b, d->field(j));
    }
    if (google::protobuf::util::MessageDifferencer::Equals(a, b)) continue;
    if (field->name() == "config_sync") {
      // Of config_sync, only the exclusion list is live.
      bool exclude_changed = !std::equal(
          a.config_sync().exclude().begin(), a.config_sync().exclude().end(),
          b.config_sync().exclude().begin(), b.config_sync().exclude().end());
      a.mutable_config_sync()->clear_exclude();
      b.mutable_config_sync()->clear_exclude();
      if (!google::protobuf::util::MessageDifferencer::Equals(a, b)) {
        plan.refused.push_back("config_sync");
      } else if (exclude_changed) {
        plan.applied.push_back("config_sync.exclude");
      }
      continue;
    }
    const std::vector<std::string>& live = ReloadPlan::Live();
    bool is_live = std::find(live.begin(), live.end(), field->name()) != live.end();
    // With an arbiter, a node's vote window must stay inside its peers'
    // loss windows: one node's new timers would break that until every
    // node reloaded. Restart them one at a time instead.
    if (field->name() == "heartbeat" && (current.has_arbiter() || next.has_arbiter())) {
      is_live = false;
    }
    (is_live ? plan.applied : plan.refused).push_back(field->name());
  }
  return plan;
}

void SplitHooks(const v1::AgentConfig& config, std::vector<v1::HookConfig>* role,
                std::vector<v1::HookConfig>* peer) {
  for (const v1::HookConfig& h : config.hooks()) {
    bool is_peer = h.on() == v1::HookConfig::PEER_LOST || h.on() == v1::HookConfig::PEER_FOUND;
    (is_peer ? peer : role)->push_back(h);
  }
}

LogLevel ToLogLevel(v1::LogConfig::Level level) {
  switch (level) {
    case v1::LogConfig::DEBUG:
      return LogLevel::kDebug;
    case v1::LogConfig::WARN:
      return LogLevel::kWarn;
    case v1::LogConfig::ERROR:
      return LogLevel::kError;
    default:
      return LogLevel::kInfo;
  }
}

LogFormat ToLogFormat(v1::LogConfig::Format format) {
  return format == v1::LogConfig::JSON ? LogFormat::kJson : LogFormat::kText;
}

}  // namespace cloudha
