#include "agent/epoch_store.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>

#include "base/secure_file.h"
#include "absl/strings/str_cat.h"
#include "agent/epoch_limit.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

std::string Dir(const char* name) {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  mkdir(dir.c_str(), 0700);
  return dir;
}

TEST(EpochStoreTest, MissingIsZeroAndStoreRoundTrips) {
  EpochStore store(Dir("roundtrip"));
  EXPECT_EQ(*store.Load(), 0u);
  ASSERT_TRUE(store.Store(41).ok());
  ASSERT_TRUE(store.Store(42).ok());
  EXPECT_EQ(*EpochStore(Dir("roundtrip")).Load(), 42u);
}

TEST(EpochStoreTest, CorruptFileIsDataLoss) {
  std::string dir = Dir("corrupt");
  ASSERT_TRUE(WriteFileAtomically(dir + "/epoch", "garbage", 0600, Overwrite::kReplace).ok());
  absl::StatusOr<uint64_t> e = EpochStore(dir).Load();
  EXPECT_EQ(e.status().code(), absl::StatusCode::kDataLoss);
}

// An epoch above the ceiling (2^64-1 once made a node promote at epoch 0)
// is corrupt, not a number to add one to.
TEST(EpochStoreTest, AnEpochAboveTheCeilingIsDataLoss) {
  std::string dir = Dir("ceiling");
  ASSERT_TRUE(WriteFileAtomically(dir + "/epoch", "epoch 18446744073709551615\n", 0600,
                                  Overwrite::kReplace)
                  .ok());
  EXPECT_EQ(EpochStore(dir).Load().status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomically(dir + "/epoch", absl::StrCat("epoch ", kMaxEpoch, "\n"), 0600,
                                  Overwrite::kReplace)
                  .ok());
  EXPECT_EQ(*EpochStore(dir).Load(), kMaxEpoch);
}

TEST(EpochStoreTest, FullDiskKeepsThePreviousEpoch) {
  std::string dir = Dir("full");
  EpochStore store(dir);
  ASSERT_TRUE(store.Store(7).ok());
  // A file size limit of 0 makes every write fail like a full disk.
  signal(SIGXFSZ, SIG_IGN);
  rlimit old;
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit none = old;
  none.rlim_cur = 0;
  setrlimit(RLIMIT_FSIZE, &none);
  absl::Status s = store.Store(8);
  setrlimit(RLIMIT_FSIZE, &old);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("storing epoch 8"), absl::string_view::npos) << s;
  EXPECT_EQ(*store.Load(), 7u);
}

}  // namespace
}  // namespace cloudha
