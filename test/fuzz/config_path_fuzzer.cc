// Fuzzes config paths, prefixes and exclusion patterns (sync/config_path.h).
//
// Input: lines. The first is a pattern (and a prefix), the second a path,
// the rest more patterns for an ExclusionSet. Every function takes every
// line; for valid ones the glob matcher is compared with a plain recursive
// matcher written from the header's rules, and the exclusion sets with
// their definition (sorted, unique, union, digest).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "sync/config_path.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

// The header's rules, literally: "*" is one segment, "**" any number (none
// included) except at the end of a pattern, where it is at least one.
class ReferenceGlob {
 public:
  ReferenceGlob(absl::string_view pattern, absl::string_view path)
      : pattern_(absl::StrSplit(pattern, '.')), path_(absl::StrSplit(path, '.')) {
    memo_.assign((pattern_.size() + 1) * (path_.size() + 1), -1);
  }

  bool Matches() { return Match(0, 0); }

 private:
  bool Match(size_t p, size_t s) {
    signed char& memo = memo_[p * (path_.size() + 1) + s];
    if (memo < 0) memo = Compute(p, s) ? 1 : 0;
    return memo == 1;
  }

  bool Compute(size_t p, size_t s) {
    if (p == pattern_.size()) return s == path_.size();
    if (pattern_[p] == "**") {
      if (p + 1 == pattern_.size()) return path_.size() - s >= 1;
      for (size_t k = s; k <= path_.size(); ++k) {
        if (Match(p + 1, k)) return true;
      }
      return false;
    }
    if (s == path_.size()) return false;
    if (pattern_[p] == "*" || pattern_[p] == path_[s]) return Match(p + 1, s + 1);
    return false;
  }

  std::vector<absl::string_view> pattern_;
  std::vector<absl::string_view> path_;
  std::vector<signed char> memo_;
};

bool ReferenceExcludes(const std::vector<std::string>& patterns, absl::string_view path) {
  for (const std::string& p : patterns) {
    if (ReferenceGlob(p, path).Matches()) return true;
  }
  return false;
}

void CheckValidation(absl::string_view s) {
  absl::Status path = ValidateConfigPath(s);
  absl::Status prefix = ValidateConfigPrefix(s);
  absl::Status pattern = ValidateConfigPattern(s);
  for (const absl::Status* st : {&path, &prefix, &pattern}) {
    FUZZ_CHECK(st->ok() || (st->code() == absl::StatusCode::kInvalidArgument &&
                            !st->message().empty()),
               st->ToString());
  }
  // A path is a prefix and a pattern; a prefix is a path or the root.
  if (path.ok()) FUZZ_CHECK(prefix.ok() && pattern.ok(), "valid path \"", s, "\"");
  FUZZ_CHECK(prefix.ok() == (s.empty() || path.ok()), "prefix vs path \"", s, "\"");
}

}  // namespace
}  // namespace cloudha

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudha;  // NOLINT: a harness
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> lines = absl::StrSplit(input, '\n');
  const std::string& pattern = lines[0];
  const std::string path = lines.size() > 1 ? lines[1] : std::string();
  for (const std::string& line : lines) CheckValidation(line);

  // Any strings: must not crash, whatever they say.
  const bool matched = ConfigGlobMatch(pattern, path);
  const bool in_subtree = InConfigSubtree(path, pattern);
  const bool path_ok = ValidateConfigPath(path).ok();
  if (ValidateConfigPattern(pattern).ok() && path_ok) {
    FUZZ_CHECK(matched == ReferenceGlob(pattern, path).Matches(), "ConfigGlobMatch(\"", pattern,
               "\", \"", path, "\") = ", matched);
  }
  if (ValidateConfigPrefix(pattern).ok() && path_ok) {
    const bool want = pattern.empty() || path == pattern ||
                      (path.size() > pattern.size() && path.compare(0, pattern.size(), pattern) == 0 &&
                       path[pattern.size()] == '.');
    FUZZ_CHECK(in_subtree == want, "InConfigSubtree(\"", path, "\", \"", pattern, "\") = ",
               in_subtree);
  }

  std::vector<std::string> patterns(lines.begin() + std::min<size_t>(2, lines.size()), lines.end());
  patterns.push_back(pattern);
  absl::StatusOr<ExclusionSet> set = ExclusionSet::Create(patterns);
  bool all_valid = true;
  for (const std::string& p : patterns) all_valid = all_valid && ValidateConfigPattern(p).ok();
  FUZZ_CHECK(set.ok() == all_valid, set.status().ToString());
  if (!set.ok()) return 0;

  std::vector<std::string> sorted = patterns;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  FUZZ_CHECK(set->patterns() == sorted, "ExclusionSet is not the sorted unique patterns");
  FUZZ_CHECK(set->digest().size() == 32, "digest of ", set->digest().size(), " bytes");
  if (path_ok) {
    FUZZ_CHECK(set->Excludes(path) == ReferenceExcludes(sorted, path), "Excludes(\"", path, "\")");
  }

  // Two halves: their union is the whole, in any order.
  std::vector<std::string> reversed(patterns.rbegin(), patterns.rend());
  const size_t half = reversed.size() / 2;
  absl::StatusOr<ExclusionSet> a =
      ExclusionSet::Create(std::vector<std::string>(reversed.begin(), reversed.begin() + half));
  absl::StatusOr<ExclusionSet> b =
      ExclusionSet::Create(std::vector<std::string>(reversed.begin() + half, reversed.end()));
  FUZZ_CHECK(a.ok() && b.ok(), "a half of a valid set is refused");
  const ExclusionSet both = a->Union(*b);
  FUZZ_CHECK(both == *set && both.digest() == set->digest(), "Union differs from the whole");
  FUZZ_CHECK(b->Union(*a) == *set, "Union is not symmetric");
  if (path_ok) {
    FUZZ_CHECK(both.Excludes(path) == (a->Excludes(path) || b->Excludes(path)),
               "union Excludes(\"", path, "\")");
  }
  return 0;
}
