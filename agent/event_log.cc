#include "agent/event_log.h"

namespace cloudha {

void EventLog::Add(absl::Time when, const std::string& kind, const std::string& message,
                   std::map<std::string, std::string> fields) {
  v1::Event event;
  event.set_time_ms(absl::ToUnixMillis(when));
  event.set_kind(kind);
  event.set_message(message);
  for (auto& [k, v] : fields) (*event.mutable_fields())[k] = std::move(v);
  absl::MutexLock lock(&mu_);
  events_.emplace_back(next_++, std::move(event));
  while (events_.size() > kCapacity) events_.pop_front();
}

std::vector<v1::Event> EventLog::Since(uint64_t after, uint64_t* last) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Event> out;
  for (const auto& [seq, event] : events_) {
    if (seq > after) out.push_back(event);
  }
  if (last != nullptr) *last = next_ - 1;
  return out;
}

bool EventLog::WaitForNew(uint64_t after, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto newer = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return next_ - 1 > after; };
  return mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
}

}  // namespace cloudha
