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
#include <utility>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/metrics.h"
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
  // Hears each reply's round trip and each refusal; may be null. Outlives
  // the path.
  Metrics* metrics = nullptr;
};

// Start() once from the owning thread; RequestStop() from any thread; Stop()
// (or the destructor) from the owning thread. The collaborators are
// thread-safe and outlive the path.
class HelloPath {
 public:
  HelloPath(HelloPathOptions options, std::shared_ptr<grpc::Channel> channel,
            const LocalNode* local, const PeerVerifier* verifier, Membership* membership,
            Clock* clock);
  ~HelloPath();
  HelloPath(const HelloPath&) = delete;
  HelloPath& operator=(const HelloPath&) = delete;

  void Start();
  // Asks the path to stop and cancels the stream in progress; returns at
  // once, so that many paths stop in parallel.
  void RequestStop();
  // RequestStop(), then waits for the path's thread.
  void Stop();
  // New heartbeat timers (a reload), from the next hello on.
  void SetTimers(absl::Duration interval, absl::Duration lost_after);

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
  absl::Mutex mu_;
  absl::Notification stop_;
  // The stream in progress, cancelled by RequestStop().
  grpc::ClientContext* active_ ABSL_GUARDED_BY(mu_) = nullptr;
  // options_.interval and lost_after, as a reload may change them.
  absl::Duration interval_ ABSL_GUARDED_BY(mu_);
  absl::Duration lost_after_ ABSL_GUARDED_BY(mu_);
  // The current timers.
  std::pair<absl::Duration, absl::Duration> Timers() ABSL_LOCKS_EXCLUDED(mu_);
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HELLO_PATH_H_
