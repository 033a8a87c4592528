// Publishes serving states through gRPC's own health service
// (grpc::EnableDefaultHealthCheckService) on every server of the agent: the
// mTLS peer listener, the admin socket and the optional plaintext health
// listener all answer grpc.health.v1 alike.
//
// Services: "" is SERVING while the agent runs (liveness). Later roles add
// cloudha.v1.Primary and cloudha.v1.Secondary.
#ifndef CLOUDHA_AGENT_HEALTH_PUBLISHER_H_
#define CLOUDHA_AGENT_HEALTH_PUBLISHER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/health_check_service_interface.h"

namespace cloudha {

inline constexpr char kAgentService[] = "";

// Thread-safe.
class HealthPublisher {
 public:
  // Adds a server's health service; it gets every state set so far.
  void Attach(grpc::HealthCheckServiceInterface* service);

  void SetServing(const std::string& service, bool serving);

  // Whether `service` is SERVING now (false for one never set, and after
  // Shutdown).
  bool Serving(const std::string& service) const;

  // Every service NOT_SERVING, for good (the agent is going away).
  void Shutdown();

 private:
  mutable absl::Mutex mu_;
  std::vector<grpc::HealthCheckServiceInterface*> targets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> states_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HEALTH_PUBLISHER_H_
