#include "base/secure_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace cloudha {
namespace {

std::string TempDir() {
  std::string templ = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                      "/secure_file_XXXXXX";
  return mkdtemp(templ.data());
}

TEST(SecureFileTest, WritesWithExactModeAndReadsBack) {
  std::string path = TempDir() + "/key.pem";
  ASSERT_TRUE(WriteFileAtomically(path, "secret", 0600, Overwrite::kRefuse).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  absl::StatusOr<std::string> content = ReadSmallFile(path);
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(*content, "secret");
}

TEST(SecureFileTest, RefusesToOverwriteAndKeepsTheOldContent) {
  std::string path = TempDir() + "/ca.crt";
  ASSERT_TRUE(WriteFileAtomically(path, "first", 0644, Overwrite::kRefuse).ok());
  absl::Status again = WriteFileAtomically(path, "second", 0644, Overwrite::kRefuse);
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.message().find("--force"), absl::string_view::npos);
  EXPECT_EQ(*ReadSmallFile(path), "first");
  ASSERT_TRUE(WriteFileAtomically(path, "second", 0644, Overwrite::kReplace).ok());
  EXPECT_EQ(*ReadSmallFile(path), "second");
}

TEST(SecureFileTest, ReadErrorsNameTheFile) {
  std::string dir = TempDir();
  absl::StatusOr<std::string> missing = ReadSmallFile(dir + "/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir + "/nope"), absl::string_view::npos);
  absl::StatusOr<std::string> folder = ReadSmallFile(dir);
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument);
}

// A FIFO in place of a config or key file once hung the agent in open().
TEST(SecureFileTest, AFifoIsRefusedWithoutWaiting) {
  std::string path = TempDir() + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  absl::StatusOr<std::string> content = ReadSmallFile(path);
  EXPECT_EQ(content.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(content.status().message().find("is not a regular file"), absl::string_view::npos);
}

TEST(SecureFileTest, MissingFolderFailsCleanly) {
  absl::Status status =
      WriteFileAtomically(TempDir() + "/no/such/dir/file", "x", 0600, Overwrite::kRefuse);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
}

TEST(SecureFileTest, MakeDirectoriesMakesParentsAndKeepsExistingFolders) {
  std::string dir = TempDir() + "/state/cloudha";
  ASSERT_TRUE(MakeDirectories(dir, 0700).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700);
  EXPECT_TRUE(MakeDirectories(dir, 0700).ok());
}

TEST(SecureFileTest, MakeDirectoriesRefusesAFileInTheWay) {
  std::string file = TempDir() + "/plain";
  ASSERT_TRUE(WriteFileAtomically(file, "x", 0600, Overwrite::kRefuse).ok());
  absl::Status s = MakeDirectories(file + "/below", 0700);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("is not a folder"), absl::string_view::npos);
}

}  // namespace
}  // namespace cloudha
