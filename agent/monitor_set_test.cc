#include "agent/monitor_set.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "agent/health_checks.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

const absl::Time kT = absl::FromUnixSeconds(100);

TEST(MonitorStateTest, FirstResultDecidesThenFallAndRise) {
  MonitorState s(/*rise=*/2, /*fall=*/3);
  EXPECT_FALSE(s.Record(absl::OkStatus(), kT));
  EXPECT_TRUE(s.passing());
  EXPECT_FALSE(s.Record(absl::UnavailableError("x"), kT));
  EXPECT_FALSE(s.Record(absl::UnavailableError("x"), kT));
  EXPECT_TRUE(s.passing());
  EXPECT_TRUE(s.Record(absl::UnavailableError("x"), kT));
  EXPECT_FALSE(s.passing());
  EXPECT_EQ(s.streak(), 3u);
  EXPECT_FALSE(s.Record(absl::OkStatus(), kT));
  EXPECT_TRUE(s.Record(absl::OkStatus(), kT));
  EXPECT_TRUE(s.passing());
}

TEST(MonitorStateTest, AFailureBetweenSuccessesResetsTheCount) {
  MonitorState s(2, 2);
  s.Record(absl::UnavailableError("down"), kT);
  EXPECT_FALSE(s.passing());
  EXPECT_FALSE(s.Record(absl::OkStatus(), kT));
  EXPECT_FALSE(s.Record(absl::UnavailableError("down"), kT));
  EXPECT_FALSE(s.Record(absl::OkStatus(), kT));
  EXPECT_FALSE(s.passing());
  EXPECT_TRUE(s.Record(absl::OkStatus(), kT));
}

v1::MonitorConfig Config(const std::string& name, uint32_t weight) {
  v1::MonitorConfig c;
  c.set_name(name);
  c.mutable_tcp()->set_address("127.0.0.1:1");
  c.set_interval_ms(1000);
  c.set_timeout_ms(100);
  c.set_rise(1);
  c.set_fall(1);
  c.set_weight(weight);
  return c;
}

TEST(MonitorSetTest, PenaltyAndAllFailing) {
  FakeClock clock;
  std::vector<MonitorSet::Change> changes;
  MonitorSet set({Config("uplink", 10), Config("app", 5)},
                 {MonitorSet::Check(), MonitorSet::Check()}, &clock,
                 [&](const MonitorSet::Change& c) { changes.push_back(c); });
  EXPECT_EQ(set.penalty(), 0u);
  EXPECT_FALSE(set.all_failing());
  set.RecordForTest(0, absl::UnavailableError("connect refused"));
  EXPECT_EQ(set.penalty(), 10u);
  EXPECT_FALSE(set.all_failing());
  set.RecordForTest(1, absl::UnavailableError("exit 1"));
  EXPECT_EQ(set.penalty(), 15u);
  EXPECT_TRUE(set.all_failing());
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].monitor, "uplink");
  EXPECT_FALSE(changes[0].passing);
  std::vector<v1::MonitorStatus> status = set.Status(clock.Now());
  EXPECT_EQ(status[0].last_result(), "connect refused");
  EXPECT_EQ(status[0].kind(), "tcp");
}

TEST(MonitorSetTest, AReloadKeepsTheStateOfUnchangedMonitors) {
  FakeClock clock;
  MonitorSet old({Config("uplink", 10), Config("app", 5)},
                 {MonitorSet::Check(), MonitorSet::Check()}, &clock, nullptr);
  old.RecordForTest(0, absl::UnavailableError("connect refused"));
  old.RecordForTest(1, absl::UnavailableError("exit 1"));
  ASSERT_EQ(old.penalty(), 15u);
  // "uplink" is unchanged, "app" has another weight, "new" is new.
  MonitorSet fresh({Config("uplink", 10), Config("app", 7), Config("new", 1)},
                   {MonitorSet::Check(), MonitorSet::Check(), MonitorSet::Check()}, &clock,
                   nullptr);
  fresh.AdoptStates(old);
  // Only uplink's failure carries over; the others start unchecked.
  EXPECT_EQ(fresh.penalty(), 10u);
  std::vector<v1::MonitorStatus> status = fresh.Status(clock.Now());
  EXPECT_EQ(status[0].last_result(), "connect refused");
  EXPECT_EQ(status[1].last_result(), "not checked yet");
}

TEST(MonitorSetTest, NoMonitorsIsNeverAllFailing) {
  FakeClock clock;
  MonitorSet set({}, {}, &clock, nullptr);
  EXPECT_FALSE(set.all_failing());
  EXPECT_EQ(set.penalty(), 0u);
}

TEST(MonitorSetTest, ThreadsCheckOnTheClock) {
  FakeClock clock;
  std::atomic<int> calls{0};
  MonitorSet set({Config("x", 1)},
                 {[&](absl::Duration) {
                   ++calls;
                   return absl::OkStatus();
                 }},
                 &clock, nullptr);
  set.Start();
  // The first check runs at once; the next only when the clock moves.
  while (calls.load() < 1 || clock.sleepers() < 1) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_EQ(calls.load(), 1);
  clock.Advance(absl::Seconds(1));
  while (calls.load() < 2) absl::SleepFor(absl::Milliseconds(1));
  set.Stop();
  EXPECT_EQ(calls.load(), 2);
}

TEST(HealthChecksTest, TcpConnect) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  EXPECT_TRUE(CheckTcpConnect(address, absl::Seconds(1)).ok());
  close(fd);
  absl::Status closed = CheckTcpConnect(address, absl::Seconds(1));
  EXPECT_FALSE(closed.ok());
  EXPECT_THAT(closed.message(), HasSubstr("Connection refused"));
}

TEST(HealthChecksTest, Command) {
  EXPECT_TRUE(CheckCommand({"/bin/true"}, absl::Seconds(5)).ok());
  absl::Status failed = CheckCommand({"/bin/sh", "-c", "echo broken; exit 4"}, absl::Seconds(5));
  EXPECT_THAT(failed.message(), HasSubstr("exit 4: broken"));
}

TEST(HealthChecksTest, Interface) {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/net";
  mkdir(dir.c_str(), 0755);
  mkdir((dir + "/eth0").c_str(), 0755);
  mkdir((dir + "/lo").c_str(), 0755);
  auto write = [](const std::string& path, const char* text) {
    FILE* f = fopen(path.c_str(), "w");
    fputs(text, f);
    fclose(f);
  };
  write(dir + "/eth0/operstate", "down\n");
  write(dir + "/lo/operstate", "unknown\n");
  write(dir + "/lo/carrier", "1\n");
  EXPECT_THAT(CheckInterface(dir, "eth0").message(), HasSubstr("eth0 is down"));
  EXPECT_TRUE(CheckInterface(dir, "lo").ok());
  write(dir + "/eth0/operstate", "up\n");
  EXPECT_TRUE(CheckInterface(dir, "eth0").ok());
  EXPECT_THAT(CheckInterface(dir, "eth9").message(), HasSubstr("not found"));
}

}  // namespace
}  // namespace cloudha
