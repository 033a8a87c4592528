// A client of one agent's config store over its admin socket, for tests and
// benchmarks: plain calls, and a watch that records what it receives on a
// thread of its own.
#ifndef CLOUDHA_TEST_CONFIG_CLIENT_H_
#define CLOUDHA_TEST_CONFIG_CLIENT_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {

class ConfigClient {
 public:
  explicit ConfigClient(const std::string& socket);

  // The revision of the commit, or the server's error.
  absl::StatusOr<uint64_t> Put(const std::string& path, const std::string& value);
  absl::StatusOr<uint64_t> PutMany(const std::vector<std::pair<std::string, std::string>>& entries);
  absl::StatusOr<uint64_t> Delete(const std::string& path, bool recursive = false);
  absl::StatusOr<std::string> Get(const std::string& path);
  absl::StatusOr<std::map<std::string, std::string>> List(const std::string& prefix = "");
  absl::StatusOr<v1::ConfigChecksumsResponse> Checksums(bool cluster,
                                                        const std::string& prefix = "");
  absl::StatusOr<v1::DiffConfigResponse> Diff(const std::string& peer = "",
                                              const std::string& prefix = "");

 private:
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

// Watches a prefix until destroyed; records every message with the time it
// arrived.
class ConfigWatch {
 public:
  struct Received {
    v1::WatchConfigResponse message;
    absl::Time at;
  };
  ConfigWatch(const std::string& socket, const std::string& prefix);
  ~ConfigWatch();

  // Waits until the first message (the watch is in place) arrived.
  bool WaitReady(absl::Duration timeout);
  // Waits until some message puts `path` with `value`; returns when it
  // arrived.
  absl::StatusOr<absl::Time> WaitForPut(const std::string& path, const std::string& value,
                                        absl::Duration timeout);
  std::vector<Received> received() const;

 private:
  std::unique_ptr<v1::AdminService::Stub> stub_;
  grpc::ClientContext context_;
  mutable absl::Mutex mu_;
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_TEST_CONFIG_CLIENT_H_
