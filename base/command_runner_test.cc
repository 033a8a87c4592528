#include "base/command_runner.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

TEST(CommandRunnerTest, ExitCodeOutputAndEnvironment) {
  CommandOutcome r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; echo $CLOUDHA_X; exit 3"},
                                {{"CLOUDHA_X", "hello"}}, absl::Seconds(10));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.summary, "exit 3");
  EXPECT_THAT(r.output, HasSubstr("out\n"));
  EXPECT_THAT(r.output, HasSubstr("err\n"));
  EXPECT_THAT(r.output, HasSubstr("hello\n"));
}

// Output that is not UTF-8 would break the status that shows it.
TEST(CommandRunnerTest, OutputThatIsNotUtf8IsCoerced) {
  CommandOutcome r =
      RunCommand({"/usr/bin/printf", "up\\377link \\303\\251"}, {}, absl::Seconds(10));
  EXPECT_TRUE(r.ok()) << r.summary;
  EXPECT_EQ(r.output, "up?link \xc3\xa9");
}

TEST(CommandRunnerTest, Success) {
  CommandOutcome r = RunCommand({"/bin/true"}, {}, absl::Seconds(10));
  EXPECT_TRUE(r.ok());
}

TEST(CommandRunnerTest, TimeoutKillsTheProcessGroup) {
  CommandOutcome r = RunCommand({"/bin/sh", "-c", "sleep 30 & sleep 30"}, {}, absl::Milliseconds(200));
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.summary, HasSubstr("timed out after 200ms"));
}

TEST(CommandRunnerTest, ABackgroundChildHoldingThePipeDoesNotHang) {
  absl::Time start = absl::Now();
  CommandOutcome r = RunCommand({"/bin/sh", "-c", "(while :; do echo x; sleep 0.01; done) & exit 0"},
                                {}, absl::Seconds(1));
  EXPECT_TRUE(r.ok()) << r.summary;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  CommandOutcome detached = RunCommand({"/bin/sh", "-c", "setsid sh -c 'sleep 5; echo late' & exit 0"},
                                       {}, absl::Seconds(1));
  EXPECT_TRUE(detached.ok()) << detached.summary;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(CommandRunnerTest, CancelStopsAtOnce) {
  absl::Notification cancel;
  cancel.Notify();
  absl::Time start = absl::Now();
  CommandOutcome r = RunCommand({"/bin/sleep", "30"}, {}, absl::Seconds(30), &cancel);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.summary, HasSubstr("cancelled"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(CommandRunnerTest, MissingExecutable) {
  CommandOutcome r = RunCommand({"/no/such/hook"}, {}, absl::Seconds(1));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.summary, HasSubstr("/no/such/hook"));
}

TEST(CommandRunnerTest, OutputIsCapped) {
  CommandOutcome r = RunCommand({"/bin/sh", "-c", "head -c 200000 /dev/zero"}, {}, absl::Seconds(10));
  EXPECT_TRUE(r.ok()) << r.summary;
  EXPECT_EQ(r.output.size(), kMaxCapturedOutput);
}

}  // namespace
}  // namespace cloudha
