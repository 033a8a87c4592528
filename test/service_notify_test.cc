// The agent under a service manager: a datagram socket stands in for
// systemd's NOTIFY_SOCKET (the protocol of sd_notify(3)), and the agent
// must say READY=1 once its listeners are open and its first role is
// decided, STATUS= with the role, WATCHDOG=1 at least twice per
// WATCHDOG_USEC while it runs, and STOPPING=1 when told to stop.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

struct Datagram {
  absl::Time at;
  std::string text;
};

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = cluster_.dir() + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path_.size(), sizeof(addr.sun_path));
    path_.copy(addr.sun_path, path_.size());
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }

  // Collects datagrams until one contains `want` or `timeout` passes.
  bool ReadUntil(const std::string& want, absl::Duration timeout) {
    absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      pollfd p{fd_, POLLIN, 0};
      int ms = static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now()));
      if (poll(&p, 1, std::max(ms, 1)) <= 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) continue;
      got_.push_back({absl::Now(), std::string(buf, n)});
      if (absl::StrContains(got_.back().text, want)) return true;
    }
    return false;
  }
  std::string All() const {
    std::vector<std::string> lines;
    for (const Datagram& d : got_) lines.push_back(d.text);
    return absl::StrJoin(lines, " | ");
  }

  TestCluster cluster_{{"a", "b"}};
  std::string path_;
  int fd_ = -1;
  std::vector<Datagram> got_;
};

TEST_F(ServiceNotifyTest, ReadyStatusWatchdogAndStopping) {
  // b runs first, so a's first decision comes as soon as it hears b.
  ASSERT_NE(cluster_.Start("b"), nullptr);
  ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
    return s.role() == v1::PRIMARY;
  })) << Logs(cluster_.agent("b"));
  // A 4 s watchdog: WATCHDOG=1 is due every 2 s at the latest (the agent
  // sends one every 1 s).
  absl::Time started = absl::Now();
  Subprocess* a = cluster_.Start(
      "a", {"/usr/bin/env", "NOTIFY_SOCKET=" + path_, "WATCHDOG_USEC=4000000"});
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(ReadUntil("READY=1", absl::Seconds(20))) << All() << Logs(a);
  // For the record, not asserted.
  std::printf("start -> READY=1 with the peer up: %.0f ms (%s)\n",
              absl::ToDoubleMilliseconds(got_.back().at - started), got_.back().text.c_str());
  // Ready means the admin socket answers and a role is decided.
  absl::StatusOr<v1::StatusResponse> status = cluster_.Status("a");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_NE(status->role(), v1::STARTING);
  EXPECT_THAT(got_.back().text, HasSubstr("STATUS=SECONDARY following b"));
  EXPECT_THAT(got_.back().text, HasSubstr("1 of 1 peers up"));

  // Once in sync with b, the status line says so.
  if (!absl::StrContains(got_.back().text, "in sync;")) {
    ASSERT_TRUE(ReadUntil("in sync;", absl::Seconds(20))) << All();
  }

  // Watchdog pings for 5 s.
  got_.clear();
  ReadUntil("never sent", absl::Seconds(5));
  std::vector<absl::Time> pings;
  for (const Datagram& d : got_) {
    if (d.text == "WATCHDOG=1") pings.push_back(d.at);
  }
  ASSERT_GE(pings.size(), 3u) << All();
  for (size_t i = 1; i < pings.size(); ++i) {
    EXPECT_LE(pings[i] - pings[i - 1], absl::Seconds(2))
        << "WATCHDOG=1 must come at least twice per WATCHDOG_USEC";
  }

  cluster_.Kill("a", SIGTERM);
  EXPECT_TRUE(ReadUntil("STOPPING=1", absl::Seconds(10))) << All();
  EXPECT_EQ(a->Wait(absl::Seconds(20)), 0);
}

TEST_F(ServiceNotifyTest, WithoutANotifySocketTheAgentRunsAsBefore) {
  Subprocess* a = cluster_.Start("a");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
    return s.role() != v1::STARTING;
  })) << Logs(a);
  EXPECT_FALSE(ReadUntil("READY=1", absl::Milliseconds(500)));
}

}  // namespace
}  // namespace cloudha
