// The client side of one heartbeat path: a Hello stream to one address of a
// peer, on a channel (and so a TCP connection) of its own.
//
// The path sends a hello every interval and reads the peer's replies on a
// second thread, so a slow reply never delays a send. It verifies the peer
// (certificate identity, node id, cluster, group) on the first reply, feeds
// replies and round-trip times to Membership, and redials with exponential
// backoff when the stream fails or falls silent for interval * threshold.
#ifndef CLOUDHA_AGENT_HELLO_PATH_H_
#define CLOUDHA_AGENT_HELLO_PATH_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/clock.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/peer_verifier.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "grpcpp/channel.h"

namespace cloudha {

struct HelloPathOptions {
  std::string peer;
  int index = 0;
  std::string address;
  absl::Duration interval;
  // interval * lost_threshold: silence after which the stream is redialed.
  absl::Duration lost_after;
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
};

// Start() once, Stop() once (or let the destructor do it). The collaborators
// are thread-safe and outlive the path.
class HelloPath {
 public:
  HelloPath(HelloPathOptions options, std::shared_ptr<grpc::Channel> channel,
            const LocalNode* local, const PeerVerifier* verifier, Membership* membership,
            Clock* clock);
  ~HelloPath();
  HelloPath(const HelloPath&) = delete;
  HelloPath& operator=(const HelloPath&) = delete;

  void Start();
  void Stop();

 private:
  // One stream, from dial to end. Returns the reason it ended, or OK when
  // it was stopped; sets *had_reply when a verified reply arrived.
  absl::Status RunStream(bool* had_reply);
  void Run();

  const HelloPathOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::PeerService::Stub> stub_;
  const LocalNode* local_;
  const PeerVerifier* verifier_;
  Membership* membership_;
  Clock* clock_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HELLO_PATH_H_
