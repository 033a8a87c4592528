#include "base/log.h"

#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

TEST(LogTest, TextQuotesWhatNeedsIt) {
  EXPECT_EQ(FormatEventForTest(LogFormat::kText, "peer_refused",
                               {{"peer", "b"}, {"reason", "wrong cluster \"x\""}, {"n", 3}}),
            "event=peer_refused peer=b reason=\"wrong cluster \\\"x\\\"\" n=3");
  EXPECT_EQ(FormatEventForTest(LogFormat::kText, "e", {{"empty", ""}}), "event=e empty=\"\"");
}

TEST(LogTest, JsonEscapes) {
  std::string json = FormatEventForTest(LogFormat::kJson, "peer_up",
                                        {{"peer", "b\"\n"}, {"rtt_ms", 0.5}});
  EXPECT_NE(json.find("\"event\":\"peer_up\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"peer\":\"b\\\"\\n\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"rtt_ms\":\"0.5\""), std::string::npos) << json;
}

}  // namespace
}  // namespace cloudha

namespace cloudha {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

TEST(LogTest, JournalFieldsCarryPriorityEventAndEachField) {
  EXPECT_THAT(JournalFieldsForTest(LogLevel::kWarn, "role_changed",
                                   {{"peer", "b"}, {"from", "PRIMARY"}, {"rtt-ms", 0.5},
                                    {"message", "x"}, {"1st", "y"}}),
              ElementsAre("PRIORITY=4", "SYSLOG_IDENTIFIER=cloudha",
                          "MESSAGE=event=role_changed peer=b from=PRIMARY rtt-ms=0.5 message=x "
                          "1st=y",
                          "EVENT=role_changed", "PEER=b", "FROM=PRIMARY", "RTT_MS=0.5",
                          "FIELD_MESSAGE=x", "FIELD_1ST=y"));
  EXPECT_THAT(JournalFieldsForTest(LogLevel::kError, "e", {}), Contains("PRIORITY=3"));
  EXPECT_THAT(JournalFieldsForTest(LogLevel::kInfo, "e", {}), Contains("PRIORITY=6"));
  EXPECT_THAT(JournalFieldsForTest(LogLevel::kDebug, "e", {}), Contains("PRIORITY=7"));
}

TEST(LogTest, JournalStreamNamesDeviceAndInode) {
  EXPECT_TRUE(JournalStreamIs("8:12345", 8, 12345));
  EXPECT_FALSE(JournalStreamIs("8:12345", 8, 12346));
  EXPECT_FALSE(JournalStreamIs("9:12345", 8, 12345));
  EXPECT_FALSE(JournalStreamIs("8", 8, 12345));
  EXPECT_FALSE(JournalStreamIs("x:y", 8, 12345));
  EXPECT_FALSE(JournalStreamIs("", 0, 0));
}

// In a child with a mount namespace of its own (root only): a tmpfs on /run
// holds a fake journal socket. With stderr named by JOURNAL_STREAM, an
// event goes to the socket with its fields; while the journal is not there,
// it goes to stderr instead (nothing is lost).
TEST(LogTest, EventsGoToTheJournalWhenStderrIsTheJournal) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a mount namespace for a fake journal)";
  char err_path[] = "/tmp/cloudha-log-test-XXXXXX";
  int err_fd = mkstemp(err_path);
  ASSERT_GE(err_fd, 0);
  int result_pipe[2];
  ASSERT_EQ(pipe(result_pipe), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(result_pipe[0]);
    auto fail = [&](const std::string& why) {
      (void)!write(result_pipe[1], why.data(), why.size());
      _exit(1);
    };
    if (unshare(CLONE_NEWNS) != 0) fail("unshare");
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("make private");
    if (mount("tmpfs", "/run", "tmpfs", 0, "size=1m") != 0) fail("mount tmpfs on /run");
    if (mkdir("/run/systemd", 0755) != 0 || mkdir("/run/systemd/journal", 0755) != 0) {
      fail("mkdir");
    }
    dup2(err_fd, 2);
    struct stat st;
    fstat(2, &st);
    setenv("JOURNAL_STREAM", absl::StrCat(st.st_dev, ":", st.st_ino).c_str(), 1);
    // No journal yet: the line goes to stderr.
    LogEvent(LogLevel::kWarn, "before_journal", {{"peer", "a"}});
    int sock = socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, "/run/systemd/journal/socket");
    if (bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) fail("bind");
    LogEvent(LogLevel::kWarn, "role_changed", {{"peer", "b"}, {"from", "PRIMARY"}});
    pollfd p{sock, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) fail("no datagram on the journal socket");
    char buf[4096];
    ssize_t n = recv(sock, buf, sizeof(buf), 0);
    if (n <= 0) fail("recv");
    std::string got(buf, n);
    (void)!write(result_pipe[1], got.data(), got.size());
    _exit(0);
  }
  close(result_pipe[1]);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(result_pipe[0], buf, sizeof(buf))) > 0) got.append(buf, n);
  close(result_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << got;
  for (const char* field : {"PRIORITY=4\n", "EVENT=role_changed\n", "PEER=b\n", "FROM=PRIMARY\n",
                            "SYSLOG_IDENTIFIER=cloudha\n",
                            "MESSAGE=event=role_changed peer=b from=PRIMARY\n"}) {
    EXPECT_NE(got.find(field), std::string::npos) << field << " not in:\n" << got;
  }
  std::string err;
  lseek(err_fd, 0, SEEK_SET);
  while ((n = read(err_fd, buf, sizeof(buf))) > 0) err.append(buf, n);
  close(err_fd);
  unlink(err_path);
  EXPECT_NE(err.find("event=before_journal peer=a"), std::string::npos) << err;
  EXPECT_EQ(err.find("role_changed"), std::string::npos) << err;
}

}  // namespace
}  // namespace cloudha
