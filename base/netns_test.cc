#include "base/netns.h"

#include <linux/capability.h>
#include <linux/sockios.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

// The inode of a namespace file: what tells two namespaces apart.
ino_t Inode(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

ino_t ThreadNamespace() { return Inode("/proc/thread-self/ns/net"); }

// The namespace a socket opened now belongs to (SIOCGSKNS).
ino_t NewSocketNamespace() {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return 0;
  int ns = ioctl(sock, SIOCGSKNS);
  close(sock);
  if (ns < 0) return 0;
  struct stat st;
  ino_t inode = fstat(ns, &st) == 0 ? st.st_ino : 0;
  close(ns);
  return inode;
}

class NetnsTest : public ::testing::Test {
 protected:
  // A namespace of the test's own: a thread unshares into a new one and
  // holds it open; the namespace lives as long as `fresh_`.
  void SetUp() override {
    int error = 0;
    std::thread maker([&] {
      if (unshare(CLONE_NEWNET) != 0) {
        error = errno;
        return;
      }
      auto ns = NetworkNamespace::OpenPath("/proc/thread-self/ns/net", "fresh");
      if (ns.ok()) fresh_ = *std::move(ns);
      fresh_inode_ = ThreadNamespace();
    });
    maker.join();
    if (error != 0) {
      GTEST_SKIP() << "unshare(CLONE_NEWNET) failed (" << strerror(error)
                   << "): making a network namespace needs root (CAP_SYS_ADMIN)";
    }
    ASSERT_NE(fresh_, nullptr);
    own_inode_ = ThreadNamespace();
    ASSERT_NE(fresh_inode_, own_inode_);
  }

  std::unique_ptr<NetworkNamespace> fresh_;
  ino_t fresh_inode_ = 0;
  ino_t own_inode_ = 0;
};

TEST_F(NetnsTest, SocketsOpenedInsideBelongToTheNamespaceAndTheThreadComesBack) {
  // A thread that runs meanwhile stays where it is: setns moves one thread.
  absl::Notification entered;
  absl::Notification checked;
  ino_t other_inside = 0;
  std::thread other([&] {
    entered.WaitForNotification();
    other_inside = ThreadNamespace();
    checked.Notify();
  });
  {
    absl::StatusOr<ScopedNetworkNamespace> inside = ScopedNetworkNamespace::Enter(fresh_.get());
    ASSERT_TRUE(inside.ok()) << inside.status();
    EXPECT_EQ(ThreadNamespace(), fresh_inode_);
    EXPECT_EQ(NewSocketNamespace(), fresh_inode_);
    entered.Notify();
    checked.WaitForNotification();
  }
  other.join();
  EXPECT_EQ(other_inside, own_inode_);
  EXPECT_EQ(ThreadNamespace(), own_inode_);
  EXPECT_EQ(NewSocketNamespace(), own_inode_);
}

TEST_F(NetnsTest, AMovedScopeReturnsOnce) {
  {
    absl::StatusOr<ScopedNetworkNamespace> inside = ScopedNetworkNamespace::Enter(fresh_.get());
    ASSERT_TRUE(inside.ok()) << inside.status();
    ScopedNetworkNamespace moved = *std::move(inside);
    EXPECT_EQ(ThreadNamespace(), fresh_inode_);
  }
  EXPECT_EQ(ThreadNamespace(), own_inode_);
}

TEST_F(NetnsTest, InNetworkNamespaceCallsInsideAndComesBack) {
  absl::StatusOr<ino_t> inode = InNetworkNamespace(
      fresh_.get(), []() -> absl::StatusOr<ino_t> { return NewSocketNamespace(); });
  ASSERT_TRUE(inode.ok()) << inode.status();
  EXPECT_EQ(*inode, fresh_inode_);
  EXPECT_EQ(ThreadNamespace(), own_inode_);
  absl::Status s = InNetworkNamespace(nullptr, [] { return absl::OkStatus(); });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(NetnsTest, EnteringWithoutCapSysAdminIsPermissionDenied) {
  // Capabilities are per thread too: this thread drops CAP_SYS_ADMIN from
  // its effective set and goes away.
  absl::Status status;
  bool called = false;
  std::thread unprivileged([&] {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) return;
    data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
    if (syscall(SYS_capset, &header, data) != 0) return;
    status = InNetworkNamespace(fresh_.get(), [&] {
      called = true;
      return absl::OkStatus();
    });
  });
  unprivileged.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("cannot enter network namespace fresh"));
  EXPECT_FALSE(called);
  EXPECT_EQ(ThreadNamespace(), own_inode_);
}

// These need no privilege.

TEST(NetnsNameTest, EnteringNoNamespaceStaysPut) {
  ino_t before = ThreadNamespace();
  absl::StatusOr<ScopedNetworkNamespace> inside = ScopedNetworkNamespace::Enter(nullptr);
  ASSERT_TRUE(inside.ok()) << inside.status();
  EXPECT_EQ(ThreadNamespace(), before);
}

TEST(NetnsNameTest, NamesStayInsideRunNetns) {
  EXPECT_EQ(NetworkNamespacePath("blue"), "/run/netns/blue");
  EXPECT_TRUE(ValidateNetworkNamespaceName("cloudha-demo-a").ok());
  EXPECT_TRUE(ValidateNetworkNamespaceName("a.b_c").ok());
  for (const char* bad : {"", "a/b", "..", ".hidden", "-n", "/run/netns/x"}) {
    absl::Status s = ValidateNetworkNamespaceName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateNetworkNamespaceName(std::string(256, 'n')).ok());
  absl::StatusOr<std::unique_ptr<NetworkNamespace>> ns = NetworkNamespace::Open("../x");
  EXPECT_EQ(ns.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NetnsNameTest, AMissingNameSaysHowToMakeIt) {
  std::string name = absl::StrCat("cloudha-netns-test-", getpid());
  absl::StatusOr<std::unique_ptr<NetworkNamespace>> ns = NetworkNamespace::Open(name);
  EXPECT_EQ(ns.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ns.status().message(),
            absl::StrCat("/run/netns/", name, " does not exist (ip netns add ", name, ")"));
}

TEST(NetnsNameTest, AFileThatIsNoNamespaceIsRefused) {
  absl::StatusOr<std::unique_ptr<NetworkNamespace>> ns =
      NetworkNamespace::OpenPath("/proc/self/status", "status");
  EXPECT_EQ(ns.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ns.status().message(), HasSubstr("/proc/self/status is not a network namespace"));
  // Another kind of namespace is not one either.
  ns = NetworkNamespace::OpenPath("/proc/thread-self/ns/uts", "uts");
  EXPECT_EQ(ns.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace cloudha
