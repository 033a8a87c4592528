#include "agent/health_publisher.h"

namespace cloudha {

void HealthPublisher::Attach(grpc::HealthCheckServiceInterface* service) {
  if (service == nullptr) return;
  absl::MutexLock lock(&mu_);
  targets_.push_back(service);
  for (const auto& [name, serving] : states_) service->SetServingStatus(name, serving);
  if (shut_down_) service->Shutdown();
}

void HealthPublisher::SetServing(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  auto it = states_.find(service);
  // Unchanged: the role thread republishes every tick; watchers need only
  // changes.
  if (it != states_.end() && it->second == serving) return;
  states_[service] = serving;
  for (auto* target : targets_) target->SetServingStatus(service, serving);
}

void HealthPublisher::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [name, serving] : states_) serving = false;
  // Sets every service NOT_SERVING and ignores later updates.
  for (auto* target : targets_) target->Shutdown();
}

bool HealthPublisher::Serving(const std::string& service) const {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  auto it = states_.find(service);
  return it != states_.end() && it->second;
}

}  // namespace cloudha
