#include "agent/http_probe.h"

#include <atomic>
#include <string>

#include "absl/synchronization/mutex.h"
#include "agent/probe_client.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

class State {
 public:
  void Set(ProbeView view) {
    absl::MutexLock lock(&mu_);
    view_ = view;
  }
  ProbeView Get() {
    absl::MutexLock lock(&mu_);
    return view_;
  }

 private:
  absl::Mutex mu_;
  ProbeView view_;
};

TEST(HttpProbeTest, EachPathAnswersItsServiceWithTheRoleLine) {
  State state;
  state.Set({true, true, false, "primary epoch 7"});
  auto probe = HttpProbe::Start("127.0.0.1:0", [&] { return state.Get(); });
  ASSERT_TRUE(probe.ok()) << probe.status();
  int port = (*probe)->port();
  ASSERT_GT(port, 0);

  ProbeAnswer a = ProbeRequest(port, "GET", "/primary");
  EXPECT_EQ(a.code, 200);
  EXPECT_EQ(a.body, "primary epoch 7\n");
  EXPECT_EQ(ProbeRequest(port, "GET", "/secondary").code, 503);
  EXPECT_EQ(ProbeRequest(port, "GET", "/healthz").code, 200);
  ProbeAnswer head = ProbeRequest(port, "HEAD", "/primary");
  EXPECT_EQ(head.code, 200);
  EXPECT_EQ(head.body, "");

  // The next request sees the new state: nothing is cached.
  state.Set({true, false, true, "secondary epoch 8 primary b"});
  EXPECT_EQ(ProbeRequest(port, "GET", "/primary").code, 503);
  ProbeAnswer s = ProbeRequest(port, "GET", "/secondary");
  EXPECT_EQ(s.code, 200);
  EXPECT_EQ(s.body, "secondary epoch 8 primary b\n");

  state.Set({false, false, false, "primary epoch 8 (not serving)"});
  EXPECT_EQ(ProbeRequest(port, "GET", "/healthz").code, 503);
}

TEST(HttpProbeTest, OtherPathsAndMethodsAreRefused) {
  auto probe = HttpProbe::Start("127.0.0.1:0", [] { return ProbeView{true, true, false, "x"}; });
  ASSERT_TRUE(probe.ok()) << probe.status();
  int port = (*probe)->port();
  EXPECT_EQ(ProbeRequest(port, "GET", "/").code, 404);
  EXPECT_EQ(ProbeRequest(port, "GET", "/etc/passwd").code, 404);
  EXPECT_EQ(ProbeRequest(port, "GET", "/primaryx").code, 404);
  EXPECT_EQ(ProbeRequest(port, "POST", "/primary").code, 405);
  EXPECT_EQ(ProbeRequest(port, "DELETE", "/healthz").code, 405);
}

TEST(HttpProbeTest, BadAddressesAreRefusedClearly) {
  auto bad = HttpProbe::Start("127.0.0.1", [] { return ProbeView{}; });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("is not HOST:PORT"), std::string::npos) << bad.status();

  auto first = HttpProbe::Start("127.0.0.1:0", [] { return ProbeView{}; });
  ASSERT_TRUE(first.ok());
  std::string taken = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HttpProbe::Start(taken, [] { return ProbeView{}; });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cannot listen on " + taken), std::string::npos)
      << second.status();
}

TEST(TcpPrimaryListenerTest, OpenOnlyWhileAsked) {
  // A free port: bound by a probe server, then released.
  int port;
  {
    auto probe = HttpProbe::Start("127.0.0.1:0", [] { return ProbeView{}; });
    ASSERT_TRUE(probe.ok());
    port = (*probe)->port();
  }
  std::atomic<int> errors{0};
  auto listener = TcpPrimaryListener::Create("127.0.0.1:" + std::to_string(port),
                                             [&](const absl::Status&) { ++errors; });
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_FALSE(ProbeConnects(port)) << "open before SetOpen(true)";

  (*listener)->SetOpen(true);
  ASSERT_TRUE((*listener)->WaitSettled(5000));
  EXPECT_TRUE(ProbeConnects(port)) << "closed after SetOpen(true)";

  (*listener)->SetOpen(false);
  ASSERT_TRUE((*listener)->WaitSettled(5000));
  EXPECT_FALSE(ProbeConnects(port)) << "still open after SetOpen(false)";

  // Open and closed again, many times: each settles.
  for (int i = 0; i < 5; ++i) {
    (*listener)->SetOpen(true);
    ASSERT_TRUE((*listener)->WaitSettled(5000));
    EXPECT_TRUE(ProbeConnects(port));
    (*listener)->SetOpen(false);
    ASSERT_TRUE((*listener)->WaitSettled(5000));
  }
  EXPECT_EQ(errors.load(), 0);
}

TEST(TcpPrimaryListenerTest, APortTakenMeanwhileIsReportedOnce) {
  auto holder = HttpProbe::Start("127.0.0.1:0", [] { return ProbeView{}; });
  ASSERT_TRUE(holder.ok());
  int port = (*holder)->port();
  // Taken at start: refused at once.
  std::atomic<int> errors{0};
  auto refused = TcpPrimaryListener::Create("127.0.0.1:" + std::to_string(port),
                                            [&](const absl::Status&) { ++errors; });
  EXPECT_FALSE(refused.ok());

  // Free at start, taken before the node turns primary.
  int free_port;
  {
    auto p = HttpProbe::Start("127.0.0.1:0", [] { return ProbeView{}; });
    ASSERT_TRUE(p.ok());
    free_port = (*p)->port();
  }
  auto listener = TcpPrimaryListener::Create("127.0.0.1:" + std::to_string(free_port),
                                             [&](const absl::Status&) { ++errors; });
  ASSERT_TRUE(listener.ok());
  auto thief = HttpProbe::Start("127.0.0.1:" + std::to_string(free_port),
                                [] { return ProbeView{}; });
  ASSERT_TRUE(thief.ok());
  for (int i = 0; i < 3; ++i) {
    (*listener)->SetOpen(true);
    (*listener)->WaitSettled(5000);
  }
  EXPECT_EQ(errors.load(), 1);
}

}  // namespace
}  // namespace cloudha
