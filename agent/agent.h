// The cloudha agent: wires the peer listener (mutual TLS), the admin socket,
// the optional plaintext health listener, one HelloPath per peer address and
// the failure detector together.
#ifndef CLOUDHA_AGENT_AGENT_H_
#define CLOUDHA_AGENT_AGENT_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "agent/admin_service.h"
#include "agent/clock.h"
#include "agent/health_publisher.h"
#include "agent/hello_path.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/peer_service.h"
#include "agent/peer_verifier.h"
#include "cloudha/v1/config.pb.h"
#include "crypto/tls_material.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server.h"

namespace cloudha {

// Create(), then Start() once, then Shutdown() once (the destructor shuts
// down too). Status() is thread-safe.
class Agent : public StatusSource {
 public:
  // `config` must have passed LoadAgentConfig's checks. `boot_id` is this
  // process's incarnation (random); `clock` outlives the agent.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(v1::AgentConfig config,
                                                       uint64_t boot_id, Clock* clock);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens the listeners and starts talking to peers. A listener that cannot
  // be opened (port in use, another agent on the admin socket) is an error
  // and nothing is left running.
  absl::Status Start();

  // Health turns NOT_SERVING first, then everything stops.
  void Shutdown();

  v1::StatusResponse Status() override;

 private:
  Agent(v1::AgentConfig config, TlsMaterial tls, uint64_t boot_id, Clock* clock);

  absl::Status PrepareStateDir();
  absl::Status PrepareAdminSocket();
  void Tick();

  const v1::AgentConfig config_;
  const TlsMaterial tls_;
  Clock* clock_;
  LocalNode local_;
  PeerVerifier verifier_;
  Membership membership_;
  HealthPublisher health_;
  PeerServiceImpl peer_service_;
  AdminServiceImpl admin_service_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Server> admin_server_;
  // Declared before health_server_, which uses it, so it outlives it.
  std::unique_ptr<grpc::CallbackGenericService> health_fallback_;
  std::unique_ptr<grpc::Server> health_server_;
  std::vector<std::unique_ptr<HelloPath>> paths_;
  absl::Notification stop_;
  std::thread ticker_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_AGENT_H_
