// Config paths and exclusion patterns.
//
// A path is dot-separated segments ("firewall.policy.10.action"). A segment
// is 1-64 characters of [A-Za-z0-9_-]; a path has at most 32 segments and
// 512 bytes, and does not start with '-' (apply hooks get paths as
// arguments, where it would read as an option). A pattern is a path whose segments may also be "*" (exactly one
// segment) or "**" (any number of segments, zero included): "system.hostname",
// "system.interface.**", "router.*.gateway".
//
// A "**" at the end of a pattern stands for at least one segment, so that
// "a.**" is everything strictly below "a": it matches "a.x" and "a.x.y" but
// not "a" itself (list "a" as well to exclude it too). Elsewhere "**" may
// stand for no segment: "a.**.b" matches "a.b" and "a.x.y.b", "**.b"
// matches "b". "**" alone matches every path.
#ifndef CLOUDHA_SYNC_CONFIG_PATH_H_
#define CLOUDHA_SYNC_CONFIG_PATH_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

inline constexpr size_t kMaxConfigPathBytes = 512;
inline constexpr size_t kMaxConfigSegmentBytes = 64;
inline constexpr size_t kMaxConfigSegments = 32;
// Largest value the store accepts.
inline constexpr size_t kMaxConfigValueBytes = 1024 * 1024;

// OK, or INVALID_ARGUMENT naming the path and what is wrong with it
// ("segment 3 of "a..b" is empty", "character '/' at 4 is not allowed").
absl::Status ValidateConfigPath(absl::string_view path);
// Like ValidateConfigPath, "" (the root) also allowed; a trailing "." is
// not. For list/watch/export/delete prefixes.
absl::Status ValidateConfigPrefix(absl::string_view prefix);
// Same rules plus "*" and "**" segments.
absl::Status ValidateConfigPattern(absl::string_view pattern);

// Whether `path` lies in the subtree `prefix`: equal to it or below it
// ("a.b" is in "a" and in "a.b", not in "a.bc"). "" holds every path.
bool InConfigSubtree(absl::string_view path, absl::string_view prefix);

// Whether the (valid) pattern matches the (valid) path.
bool ConfigGlobMatch(absl::string_view pattern, absl::string_view path);

// A set of exclusion patterns: sorted, without duplicates. Immutable and
// cheap to copy.
class ExclusionSet {
 public:
  // The empty set.
  ExclusionSet();
  // Validates every pattern; INVALID_ARGUMENT naming the first bad one.
  static absl::StatusOr<ExclusionSet> Create(const std::vector<std::string>& patterns);

  // Whether some pattern matches `path`.
  bool Excludes(absl::string_view path) const;
  // The union of both sets.
  ExclusionSet Union(const ExclusionSet& other) const;

  const std::vector<std::string>& patterns() const { return patterns_; }
  bool empty() const { return patterns_.empty(); }
  // SHA-256 (32 raw bytes) of the sorted patterns, each followed by '\n'.
  // Equal sets have equal digests; the empty set hashes the empty string.
  const std::string& digest() const { return digest_; }

  friend bool operator==(const ExclusionSet& a, const ExclusionSet& b) {
    return a.patterns_ == b.patterns_;
  }

 private:
  explicit ExclusionSet(std::vector<std::string> sorted_unique);
  std::vector<std::string> patterns_;
  std::string digest_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_PATH_H_
