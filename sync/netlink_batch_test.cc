// NetlinkBatch against the kernel's rtnetlink: adding IPv4 addresses (in
// 198.18.0.0/15) to the loopback interface of a network namespace of the
// test's own. A second add of an address fails with EEXIST, so the outcome
// of every request is known in advance. Needs root; skips otherwise.
#include "sync/netlink_batch.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

std::string& SkipReason() {
  static std::string* reason = new std::string;
  return *reason;
}

// Moves the process into a new network namespace before any test runs.
class PrivateNetworkNamespace : public ::testing::Environment {
 public:
  void SetUp() override {
    if (geteuid() != 0) {
      SkipReason() = "needs root (CAP_NET_ADMIN) to add addresses in a private network namespace";
    } else if (unshare(CLONE_NEWNET) != 0) {
      SkipReason() = absl::StrCat("unshare(CLONE_NEWNET) failed: ", std::strerror(errno));
    }
  }
};
::testing::Environment* const kNamespace =
    ::testing::AddGlobalTestEnvironment(new PrivateNetworkNamespace);

// 198.18.0.0 + i, in network order.
uint32_t Address(size_t i) { return htonl(0xc6120000u + static_cast<uint32_t>(i)); }

// Writes "add 198.18.0.0 + i / 32 to lo, failing if it is there".
int AddAddress(size_t i, nlmsghdr* request) {
  request->nlmsg_type = RTM_NEWADDR;
  request->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  auto* header = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(request, sizeof(ifaddrmsg)));
  header->ifa_family = AF_INET;
  header->ifa_prefixlen = 32;
  header->ifa_scope = RT_SCOPE_HOST;
  header->ifa_index = if_nametoindex("lo");
  mnl_attr_put_u32(request, IFA_LOCAL, Address(i));
  mnl_attr_put_u32(request, IFA_ADDRESS, Address(i));
  return 0;
}

class NetlinkBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
  }

  std::unique_ptr<NetlinkBatch> Open(int receive_buffer_bytes) {
    absl::StatusOr<std::unique_ptr<NetlinkBatch>> batch =
        NetlinkBatch::Open(NETLINK_ROUTE, receive_buffer_bytes);
    EXPECT_TRUE(batch.ok()) << batch.status();
    return batch.ok() ? std::move(*batch) : nullptr;
  }
};

TEST_F(NetlinkBatchTest, ReportsEachRequestsOutcomeAcrossManySends) {
  std::unique_ptr<NetlinkBatch> batch = Open(1 << 20);
  ASSERT_NE(batch, nullptr);
  EXPECT_NE(batch->port_id(), 0u);
  const size_t count = 5 * batch->max_requests_per_send() + 7;

  // Every other address first, then all: the earlier ones fail.
  std::vector<int> outcomes;
  batch->Send(
      count / 2, [](size_t i, nlmsghdr* request) { return AddAddress(2 * i, request); }, &outcomes);
  ASSERT_EQ(outcomes.size(), count / 2);
  for (size_t i = 0; i < outcomes.size(); ++i) ASSERT_EQ(outcomes[i], 0) << i;

  batch->Send(count, &AddAddress, &outcomes);
  ASSERT_EQ(outcomes.size(), count);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(outcomes[i], i % 2 == 0 && i / 2 < count / 2 ? EEXIST : 0) << i;
  }
}

TEST_F(NetlinkBatchTest, ABuilderErrorIsTheOutcomeAndNothingIsSent) {
  std::unique_ptr<NetlinkBatch> batch = Open(1 << 20);
  ASSERT_NE(batch, nullptr);
  std::vector<int> outcomes;
  batch->Send(
      100,
      [](size_t i, nlmsghdr* request) {
        AddAddress(10000 + i, request);  // half written, then abandoned
        return i % 3 == 0 ? ENOMEM : 0;
      },
      &outcomes);
  ASSERT_EQ(outcomes.size(), 100u);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(outcomes[i], i % 3 == 0 ? ENOMEM : 0) << i;
  // Those not sent can be added now; the others exist.
  batch->Send(
      100, [](size_t i, nlmsghdr* request) { return AddAddress(10000 + i, request); }, &outcomes);
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(outcomes[i], i % 3 == 0 ? 0 : EEXIST) << i;
}

TEST_F(NetlinkBatchTest, ASmallReceiveBufferMeansSmallSendsNotLostErrors) {
  std::unique_ptr<NetlinkBatch> batch = Open(4096);
  ASSERT_NE(batch, nullptr);
  EXPECT_LT(batch->max_requests_per_send(), 16u);
  constexpr size_t kCount = 2000;
  auto add = [](size_t i, nlmsghdr* request) { return AddAddress(20000 + i, request); };
  std::vector<int> outcomes;
  batch->Send(kCount, add, &outcomes);
  for (size_t i = 0; i < kCount; ++i) ASSERT_EQ(outcomes[i], 0) << i;
  batch->Send(kCount, add, &outcomes);  // every one an error message
  for (size_t i = 0; i < kCount; ++i) ASSERT_EQ(outcomes[i], EEXIST) << i;
}

TEST_F(NetlinkBatchTest, NoRequestsSendsNothing) {
  std::unique_ptr<NetlinkBatch> batch = Open(1 << 20);
  ASSERT_NE(batch, nullptr);
  std::vector<int> outcomes = {1, 2};
  batch->Send(0, &AddAddress, &outcomes);
  EXPECT_TRUE(outcomes.empty());
}

}  // namespace
}  // namespace cloudha
