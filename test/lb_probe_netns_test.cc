// A load balancer that knows nothing of gRPC finds the primary by HTTP:
// HAProxy in a namespace of its own health-checks both nodes' GET /primary
// (health.http_listen) and forwards a client there; kill -9 of the primary
// and the client reaches the survivor. Prints the time from the kill to the
// first answer from the survivor through HAProxy, beside the time a gRPC
// health Watch of cloudha.v1.Primary saw the survivor SERVING.
//
// Namespaces a, b and lb; links a-b (198.18.13.0/24, the heartbeat), a-lb
// (198.18.11.0/24) and b-lb (198.18.12.0/24). Needs root, `ip netns`,
// haproxy and curl; skipped with the reason otherwise.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "test/subprocess.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

class LbProbeNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    for (const char* tool : {"haproxy", "curl"}) {
      if (RunCommand({"sh", "-c", absl::StrCat("command -v ", tool)}, "/").exit_code != 0) {
        GTEST_SKIP() << tool << " is not installed (apt-get install haproxy curl)";
      }
    }
    tag_ = absl::StrCat(getpid() % 100000);
    for (const char* n : {"a", "b", "lb"}) {
      ns_[n] = absl::StrCat("cloudha-", tag_, "-", n);
      CommandResult add = Ip({"netns", "add", ns_[n]});
      if (add.exit_code != 0) GTEST_SKIP() << "ip netns add failed: " << add.err << add.out;
      created_.push_back(ns_[n]);
      Ip({"-n", ns_[n], "link", "set", "lo", "up"});
    }
    // subnet 13: a (.1) - b (.2); 11: a (.2) - lb (.1); 12: b (.2) - lb (.1).
    Connect("a", "198.18.13.1", "b", "198.18.13.2", "ab");
    Connect("lb", "198.18.11.1", "a", "198.18.11.2", "la");
    Connect("lb", "198.18.12.1", "b", "198.18.12.2", "lb");
    for (const char* node : {"a", "b"}) cluster_.WriteConfig(node, Config(node));
    ASSERT_NE(cluster_.Start("a", {"ip", "netns", "exec", ns_["a"]}), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
      return s.role() == v1::PRIMARY && s.primary_ready();
    })) << Logs(cluster_.agent("a"));
    ASSERT_NE(cluster_.Start("b", {"ip", "netns", "exec", ns_["b"]}), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.primary() == "a";
    })) << Logs(cluster_.agent("b"));

    // HAProxy checks GET /primary on both every 100 ms; one failure takes a
    // server out, one success puts it in; a refused connection is retried
    // once on the other server.
    std::string cfg = absl::StrCat(
        "global\n  maxconn 256\n"
        "defaults\n  mode http\n  timeout connect 200ms\n  timeout client 2s\n"
        "  timeout server 2s\n  retries 1\n  option redispatch 1\n"
        "frontend clients\n  bind 127.0.0.1:8080\n  default_backend pair\n"
        "backend pair\n  option httpchk GET /primary\n  http-check expect status 200\n"
        "  default-server inter 100ms fall 1 rise 1\n"
        "  server a 198.18.11.2:7902 check\n  server b 198.18.12.2:7902 check\n");
    std::string path = cluster_.dir() + "/haproxy.cfg";
    ASSERT_TRUE(WriteFileAtomically(path, cfg, 0644, Overwrite::kReplace).ok());
    absl::StatusOr<std::unique_ptr<Subprocess>> haproxy = Subprocess::Start(
        {"ip", "netns", "exec", ns_["lb"], "haproxy", "-db", "-f", path},
        cluster_.dir() + "/haproxy");
    ASSERT_TRUE(haproxy.ok()) << haproxy.status();
    haproxy_ = std::move(*haproxy);
  }

  void TearDown() override {
    haproxy_.reset();  // SIGKILL
    for (const char* node : {"a", "b"}) cluster_.Kill(node, SIGKILL);
    for (const std::string& ns : created_) Ip({"netns", "del", ns});
  }

  CommandResult Ip(std::vector<std::string> args) {
    args.insert(args.begin(), "ip");
    return RunCommand(args, cluster_.dir());
  }

  void Connect(const std::string& x, const std::string& x_addr, const std::string& y,
               const std::string& y_addr, const std::string& name) {
    std::string ex = absl::StrCat("ch", tag_, name, "x");  // at most 15 characters
    std::string ey = absl::StrCat("ch", tag_, name, "y");
    ASSERT_EQ(Ip({"link", "add", ex, "netns", ns_[x], "type", "veth", "peer", "name", ey,
                  "netns", ns_[y]})
                  .exit_code,
              0);
    Ip({"-n", ns_[x], "addr", "add", x_addr + "/24", "dev", ex});
    Ip({"-n", ns_[y], "addr", "add", y_addr + "/24", "dev", ey});
    Ip({"-n", ns_[x], "link", "set", ex, "up"});
    Ip({"-n", ns_[y], "link", "set", ey, "up"});
  }

  std::string Config(const std::string& node) {
    std::string peer = node == "a" ? "b" : "a";
    return absl::StrCat(
        "cluster { name: \"demo\" group_id: 7 }\n", "node { id: \"", node, "\" priority: ",
        node == "a" ? 200 : 100, " }\n", "listen: \"0.0.0.0:7801\"\n", "peers { id: \"", peer,
        "\" addresses: \"198.18.13.", node == "a" ? "2" : "1", ":7801\" }\n",
        "tls { ca_file: \"ca.crt\" cert_file: \"", node, ".crt\" key_file: \"", node,
        ".key\" }\n", "heartbeat { interval_ms: 100 lost_threshold: 5 }\n",
        "health { http_listen: \"0.0.0.0:7902\" }\n", "admin { socket: \"", node, ".sock\" }\n",
        "state_dir: \"state-", node, "\"\n");
  }

  // One request through HAProxy, from a client in lb: the body, or "".
  std::string ThroughProxy() {
    CommandResult r = RunCommand({"ip", "netns", "exec", ns_["lb"], "curl", "-s", "-f", "-m",
                                  "0.5", "http://127.0.0.1:8080/primary"},
                                 cluster_.dir());
    return r.exit_code == 0 ? r.out : "";
  }

  std::string tag_;
  std::map<std::string, std::string> ns_;
  std::vector<std::string> created_;
  TestCluster cluster_{{"a", "b"}};
  std::unique_ptr<Subprocess> haproxy_;
};

TEST_F(LbProbeNetnsTest, AClientBehindHaproxyReachesTheSurvivor) {
  // HAProxy found the primary.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string body;
  while (absl::Now() < deadline && !absl::StrContains(body = ThroughProxy(), "node a")) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(absl::StrContains(body, "primary epoch 1 node a")) << "through HAProxy: " << body;

  // A gRPC health Watch of b's cloudha.v1.Primary, on b's admin socket.
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel("unix:" + cluster_.socket("b"), grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch;
  absl::Mutex mu;
  absl::Time watch_serving = absl::InfiniteFuture();
  std::thread watcher([&] {
    HealthCheckRequest request;
    request.set_service("cloudha.v1.Primary");
    auto reader = health->Watch(&watch, request);
    HealthCheckResponse response;
    while (reader->Read(&response)) {
      if (response.status() == HealthCheckResponse::SERVING) {
        absl::MutexLock lock(&mu);
        watch_serving = absl::Now();
        break;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(200));  // the watch is open

  absl::Time killed = absl::Now();
  cluster_.Kill("a", SIGKILL);
  absl::Time reached = absl::InfiniteFuture();
  int requests = 0;
  while (absl::Now() - killed < absl::Seconds(30)) {
    ++requests;
    if (absl::StrContains(ThroughProxy(), "node b")) {
      reached = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  watch.TryCancel();
  watcher.join();
  ASSERT_NE(reached, absl::InfiniteFuture()) << "the client never reached b through HAProxy";
  absl::MutexLock lock(&mu);
  std::printf(
      "kill -9 of the primary (heartbeat 100 ms x 5; HAProxy checks GET /primary every 100 ms): "
      "first answer from the survivor through HAProxy after %lld ms (%d requests); gRPC Watch "
      "of cloudha.v1.Primary saw it SERVING after %lld ms\n",
      static_cast<long long>(absl::ToInt64Milliseconds(reached - killed)), requests,
      watch_serving == absl::InfiniteFuture()
          ? -1LL
          : static_cast<long long>(absl::ToInt64Milliseconds(watch_serving - killed)));
}

}  // namespace
}  // namespace cloudha
