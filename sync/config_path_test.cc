#include "sync/config_path.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

std::string Segments(size_t n) {
  std::vector<std::string> segments(n, "s");
  return absl::StrJoin(segments, ".");
}

TEST(ConfigPathTest, ValidPaths) {
  for (const char* path : {"a", "firewall.policy.10.action", "A-b_9.x", "0", "a.b.c.d", "a.-b"}) {
    EXPECT_TRUE(ValidateConfigPath(path).ok()) << path;
  }
  EXPECT_TRUE(ValidateConfigPath(std::string(kMaxConfigSegmentBytes, 'x')).ok());
  EXPECT_TRUE(ValidateConfigPath(Segments(kMaxConfigSegments)).ok());
  // 8 segments of 63 bytes + 7 dots = 511 bytes, then one more byte.
  std::string longest =
      absl::StrCat(absl::StrJoin(std::vector<std::string>(8, std::string(63, 'x')), "."), "y");
  ASSERT_EQ(longest.size(), kMaxConfigPathBytes);
  EXPECT_TRUE(ValidateConfigPath(longest).ok());
}

TEST(ConfigPathTest, InvalidPathsSayWhatIsWrong) {
  struct Case {
    std::string path;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "is empty"},
      {".a", "starts with '.'"},
      {"a.", "ends with '.'"},
      {".", "starts with '.'"},
      {"a..b", "segment 2 of config path \"a..b\" is empty"},
      {"a.b/c", "character '/' at offset 3"},
      {"a b", "character ' ' at offset 1"},
      {"a.*", "character '*' at offset 2"},  // a path is not a pattern
      {"a\nb", "character '\\n' at offset 1"},
      {"ä", "is not allowed"},
      {std::string(kMaxConfigSegmentBytes + 1, 'x'), "is 65 bytes, more than 64"},
      {Segments(kMaxConfigSegments + 1), "more than 32 segments"},
      {std::string(kMaxConfigPathBytes + 1, 'x'), "is 513 bytes, more than 512"},
      // Hooks get paths as arguments: "--help" once reached them as an option.
      {"--help", "starts with '-'"},
      {"-x.y", "starts with '-'"},
  };
  for (const Case& c : cases) {
    absl::Status status = ValidateConfigPath(c.path);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << c.path << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.path;
  }
  // Long bad input is cut short in the message.
  absl::Status status = ValidateConfigPath(std::string(10000, 'x'));
  EXPECT_LT(status.message().size(), 200u) << status;
}

TEST(ConfigPathTest, Prefixes) {
  EXPECT_TRUE(ValidateConfigPrefix("").ok());
  EXPECT_TRUE(ValidateConfigPrefix("a.b").ok());
  EXPECT_THAT(ValidateConfigPrefix("a.").message(),
              HasSubstr("config prefix \"a.\" ends with '.'"));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateConfigPrefix(".")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateConfigPrefix("a.*")));
}

TEST(ConfigPathTest, Patterns) {
  for (const char* pattern : {"a", "*", "**", "a.*", "a.**", "**.b", "a.*.c", "a.**.c", "*.*"}) {
    EXPECT_TRUE(ValidateConfigPattern(pattern).ok()) << pattern;
  }
  for (const char* pattern : {"", "a.", "a..b", "a*", "a.b*", "***", "*a", "a.*x.c", "a/b"}) {
    absl::Status status = ValidateConfigPattern(pattern);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << pattern;
    EXPECT_THAT(status.message(), HasSubstr("config pattern")) << status;
  }
  EXPECT_THAT(ValidateConfigPattern("a.b*").message(), HasSubstr("segment 2"));
  EXPECT_THAT(ValidateConfigPattern("a.b*").message(), HasSubstr("whole segments"));
}

TEST(ConfigPathTest, InConfigSubtree) {
  EXPECT_TRUE(InConfigSubtree("a", ""));
  EXPECT_TRUE(InConfigSubtree("a.b.c", ""));
  EXPECT_TRUE(InConfigSubtree("a", "a"));
  EXPECT_TRUE(InConfigSubtree("a.b", "a"));
  EXPECT_TRUE(InConfigSubtree("a.b.c", "a.b"));
  EXPECT_FALSE(InConfigSubtree("a.bc", "a.b"));
  EXPECT_TRUE(InConfigSubtree("a.bc", "a"));
  EXPECT_FALSE(InConfigSubtree("a.b", "a.bc"));
  EXPECT_FALSE(InConfigSubtree("ab", "a"));
  EXPECT_FALSE(InConfigSubtree("a-b", "a"));
  EXPECT_FALSE(InConfigSubtree("a", "a.b"));
  EXPECT_FALSE(InConfigSubtree("b.a", "a"));
}

TEST(ConfigPathTest, GlobMatching) {
  struct Case {
    const char* pattern;
    const char* path;
    bool match;
  };
  const Case cases[] = {
      // Literals.
      {"a", "a", true},
      {"a", "b", false},
      {"a", "a.b", false},
      {"a.b", "a", false},
      {"a.b", "a.b", true},
      {"a.b", "a.bc", false},
      // "*": exactly one segment.
      {"*", "a", true},
      {"*", "a.b", false},
      {"a.*", "a", false},
      {"a.*", "a.x", true},
      {"a.*", "a.x.y", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.c", false},
      {"a.*.c", "a.b.b.c", false},
      {"*.*", "a.b", true},
      {"*.*", "a", false},
      // "**" alone: everything.
      {"**", "a", true},
      {"**", "a.b.c", true},
      // Trailing "**": at least one segment, strictly below.
      {"a.**", "a", false},
      {"a.**", "a.x", true},
      {"a.**", "a.x.y", true},
      {"a.**", "ab.x", false},
      {"a.**", "b.a.x", false},
      {"a.*.**", "a.x", false},
      {"a.*.**", "a.x.y", true},
      // Leading "**": zero or more.
      {"**.b", "b", true},
      {"**.b", "a.b", true},
      {"**.b", "x.y.b", true},
      {"**.b", "b.c", false},
      {"**.b", "ab", false},
      // Middle "**": zero or more.
      {"a.**.b", "a.b", true},
      {"a.**.b", "a.x.b", true},
      {"a.**.b", "a.x.y.b", true},
      {"a.**.b", "a.x.y", false},
      {"a.**.b", "a.b.c", false},
      {"a.**.b", "a.b.b", true},
      {"a.**.b.*", "a.b.x", true},
      {"a.**.b.*", "a.x.b.b.x", true},
      {"a.**.b.*", "a.x.b", false},
      // Several "**": backtracking.
      {"**.a.**.b", "a.b", true},
      {"**.a.**.b", "x.a.y.z.b", true},
      {"**.a.**.b", "x.a.y.z.c", false},
      {"**.a.**", "x.a", false},
      {"**.a.**", "a.y", true},
      {"**.**", "a", true},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(ValidateConfigPattern(c.pattern).ok()) << c.pattern;
    ASSERT_TRUE(ValidateConfigPath(c.path).ok()) << c.path;
    EXPECT_EQ(ConfigGlobMatch(c.pattern, c.path), c.match) << c.pattern << " vs " << c.path;
  }
  // The longest paths and patterns.
  std::string deep = Segments(kMaxConfigSegments);
  EXPECT_TRUE(ConfigGlobMatch(deep, deep));
  EXPECT_TRUE(ConfigGlobMatch("**", deep));
  EXPECT_TRUE(ConfigGlobMatch(absl::StrCat(Segments(kMaxConfigSegments - 1), ".**"),
                              absl::StrCat(Segments(kMaxConfigSegments - 1), ".x")));
  EXPECT_FALSE(ConfigGlobMatch(absl::StrCat(Segments(kMaxConfigSegments - 1), ".**"),
                               Segments(kMaxConfigSegments - 1)));
}

TEST(ExclusionSetTest, EmptySet) {
  ExclusionSet empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_FALSE(empty.Excludes("a"));
  // SHA-256 of "".
  const unsigned char kEmptySha256[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                          0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                          0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                          0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
  EXPECT_EQ(empty.digest(), std::string(reinterpret_cast<const char*>(kEmptySha256), 32));
  absl::StatusOr<ExclusionSet> created = ExclusionSet::Create({});
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(*created, empty);
  EXPECT_EQ(created->digest(), empty.digest());
}

TEST(ExclusionSetTest, SortsDedupesAndDigestsByContent) {
  absl::StatusOr<ExclusionSet> a = ExclusionSet::Create({"system.hostname", "a.**", "a.**"});
  absl::StatusOr<ExclusionSet> b = ExclusionSet::Create({"a.**", "system.hostname"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->patterns(), (std::vector<std::string>{"a.**", "system.hostname"}));
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->digest(), b->digest());
  EXPECT_EQ(a->digest().size(), 32u);
  EXPECT_NE(a->digest(), ExclusionSet().digest());
  absl::StatusOr<ExclusionSet> c = ExclusionSet::Create({"a.**"});
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->digest(), a->digest());

  EXPECT_TRUE(a->Excludes("a.x"));
  EXPECT_TRUE(a->Excludes("system.hostname"));
  EXPECT_FALSE(a->Excludes("a"));
  EXPECT_FALSE(a->Excludes("system.domain"));
}

TEST(ExclusionSetTest, CreateNamesTheBadPattern) {
  absl::StatusOr<ExclusionSet> set = ExclusionSet::Create({"a.**", "b..c"});
  ASSERT_TRUE(absl::IsInvalidArgument(set.status()));
  EXPECT_THAT(set.status().message(), HasSubstr("\"b..c\""));
}

TEST(ExclusionSetTest, Union) {
  absl::StatusOr<ExclusionSet> a = ExclusionSet::Create({"x", "a.**"});
  absl::StatusOr<ExclusionSet> b = ExclusionSet::Create({"a.**", "m.*"});
  absl::StatusOr<ExclusionSet> all = ExclusionSet::Create({"a.**", "m.*", "x"});
  ASSERT_TRUE(a.ok() && b.ok() && all.ok());
  ExclusionSet ab = a->Union(*b);
  ExclusionSet ba = b->Union(*a);
  EXPECT_EQ(ab.patterns(), (std::vector<std::string>{"a.**", "m.*", "x"}));
  EXPECT_EQ(ab, ba);
  EXPECT_EQ(ab, *all);
  EXPECT_EQ(ab.digest(), all->digest());
  EXPECT_EQ(a->Union(ExclusionSet()), *a);
  EXPECT_EQ(ExclusionSet().Union(*a).digest(), a->digest());
  EXPECT_EQ(a->Union(*a).digest(), a->digest());
  EXPECT_EQ(ExclusionSet().Union(ExclusionSet()).digest(), ExclusionSet().digest());
}

}  // namespace
}  // namespace cloudha
