// A data plane for tests and benchmarks: publishes session changes to an
// agent's admin socket (PublishSessions, in the change codec) and reads a
// node's table back (ListSessions).
#ifndef CLOUDHA_TEST_SESSION_CLIENT_H_
#define CLOUDHA_TEST_SESSION_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "sync/session_codec.h"

namespace cloudha {

// One PublishSessions stream. Not thread-safe.
class SessionPublisher {
 public:
  explicit SessionPublisher(const std::string& socket);
  ~SessionPublisher();
  // Sends `changes` in messages of at most `per_message`; false when the
  // stream broke (Finish tells why).
  bool Publish(const std::vector<SessionChange>& changes, size_t per_message = 4000);
  // Ends the stream: the agent's verdict and counts.
  absl::StatusOr<v1::PublishSessionsResponse> Finish();

 private:
  std::unique_ptr<v1::AdminService::Stub> stub_;
  grpc::ClientContext context_;
  v1::PublishSessionsResponse response_;
  std::unique_ptr<grpc::ClientWriter<v1::PublishSessionsRequest>> writer_;
  bool finished_ = false;
};

// Every session in the node's table, sorted by key.
absl::StatusOr<std::vector<SessionRecord>> ListSessions(const std::string& socket);

// Sorts by key (for comparing tables).
void SortByKey(std::vector<SessionRecord>* records);

}  // namespace cloudha

#endif  // CLOUDHA_TEST_SESSION_CLIENT_H_
