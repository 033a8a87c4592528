// A real etcd (Debian's etcd-server) for tests: one member, its data and
// log in a folder of the test's, serving clients on the address the test
// chooses, plaintext or TLS. Used by //agent:etcd_backend_test and by the
// arbiter lab (test/arbiter_lab.h), which runs it inside a network
// namespace through `wrapper`.
//
// Not thread-safe: one owner starts and stops it.
#ifndef CLOUDHA_AGENT_ETCD_TEST_SERVER_H_
#define CLOUDHA_AGENT_ETCD_TEST_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cloudha {

class EtcdTestServer {
 public:
  struct Options {
    // Runs etcd through this (e.g. {"ip", "netns", "exec", NS}); empty runs
    // it directly.
    std::vector<std::string> wrapper;
    // etcd's data (member/) and log (etcd.log); created if missing, kept
    // across a restart so that revisions go on rising.
    std::string dir;
    // host:port etcd serves clients on ("0.0.0.0:2379" serves every address)
    // and the one it names as its own.
    std::string client_listen;
    std::string client_advertise;
    // host:port of the member's peer listener (a one-member cluster uses it
    // for nothing, but etcd needs one).
    std::string peer;
    // TLS to clients when cert_file is set; with client_ca_file, a client
    // must present a certificate that CA signed.
    std::string cert_file;
    std::string key_file;
    std::string client_ca_file;
  };

  // The etcd binary's path, or "" when it is not installed (the tests skip
  // then, saying so).
  static std::string Binary();

  // Starts etcd and waits until its log says it serves clients (at most
  // `timeout`). The error carries the end of etcd's log.
  static absl::StatusOr<std::unique_ptr<EtcdTestServer>> Start(
      Options options, absl::Duration timeout = absl::Seconds(30));

  // Kills etcd (SIGKILL, like a crash) and waits for it.
  ~EtcdTestServer();
  EtcdTestServer(const EtcdTestServer&) = delete;
  EtcdTestServer& operator=(const EtcdTestServer&) = delete;

  const Options& options() const { return options_; }
  // The end of etcd's log, for failure messages.
  std::string LogTail() const;

  // A TCP port on 127.0.0.1 that was free a moment ago.
  static int PickUnusedPort();

 private:
  explicit EtcdTestServer(Options options) : options_(std::move(options)) {}

  const Options options_;
  absl::Notification kill_;
  absl::Notification exited_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ETCD_TEST_SERVER_H_
