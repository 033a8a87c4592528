#include "agent/event_log.h"

#include <thread>

#include "gtest/gtest.h"

namespace cloudha {
namespace {

const absl::Time kT = absl::FromUnixSeconds(1700000000);

TEST(EventLogTest, KeepsTheLastThousand) {
  EventLog log;
  for (int i = 0; i < 1005; ++i) log.Add(kT, "role", std::to_string(i));
  uint64_t last = 0;
  std::vector<v1::Event> all = log.Since(0, &last);
  EXPECT_EQ(last, 1005u);
  ASSERT_EQ(all.size(), 1000u);
  EXPECT_EQ(all.front().message(), "5");
  EXPECT_EQ(all.back().message(), "1004");
  EXPECT_EQ(all.back().time_ms(), absl::ToUnixMillis(kT));
}

TEST(EventLogTest, SinceAndWait) {
  EventLog log;
  log.Add(kT, "peer", "b up", {{"peer", "b"}});
  uint64_t last = 0;
  log.Since(0, &last);
  EXPECT_FALSE(log.WaitForNew(last, absl::Milliseconds(10)));
  std::thread adder([&] { log.Add(kT, "role", "PRIMARY"); });
  EXPECT_TRUE(log.WaitForNew(last, absl::Seconds(10)));
  adder.join();
  std::vector<v1::Event> fresh = log.Since(last, &last);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].message(), "PRIMARY");
  EXPECT_EQ(last, 2u);
}

}  // namespace
}  // namespace cloudha
