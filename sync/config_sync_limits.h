// Limits and small helpers that the parts of config replication share (the
// follower, the pusher, the outboxes and the agent's facade).
#ifndef CLOUDHA_SYNC_CONFIG_SYNC_LIMITS_H_
#define CLOUDHA_SYNC_CONFIG_SYNC_LIMITS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"

namespace cloudha {

// "firewall." and "firewall" name the same subtree.
inline std::string NormalizeConfigPrefix(std::string prefix) {
  while (!prefix.empty() && prefix.back() == '.') prefix.pop_back();
  return prefix;
}

// The patterns of a proto's repeated `exclude` field.
inline std::vector<std::string> ExclusionPatterns(
    const google::protobuf::RepeatedPtrField<std::string>& p) {
  return std::vector<std::string>(p.begin(), p.end());
}

// A value in a log line or event: at most 80 characters.
inline std::string ShortenConfigValue(const std::string& value) {
  if (value.size() <= 80) return value;
  return absl::StrCat(value.substr(0, 77), "...");
}

// Subtrees at most this big are sent whole when they differ; bigger ones
// are compared one level further down.
inline constexpr uint64_t kConfigWholeSubtree = 256;
// A pull response message carries about this many bytes of entries.
inline constexpr size_t kConfigChunkBytes = 1 << 20;
// A pusher's queue beyond this many messages means the secondary does not
// keep up: the stream restarts and the next diff sends what differs.
inline constexpr size_t kMaxConfigOutbox = 100000;
// A watcher this far behind is ended.
inline constexpr size_t kMaxConfigWatchQueue = 10000;
// Replacements logged one by one per resync; the rest are counted.
inline constexpr uint64_t kConfigReplacedLogLimit = 20;
// A checksum mismatch with the primary's hello lasting this long starts a
// new diff.
inline constexpr absl::Duration kConfigDriftGrace = absl::Seconds(3);
// Paths passed as arguments to an apply hook, at most this many bytes.
inline constexpr size_t kMaxConfigHookArgBytes = 64 * 1024;

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_SYNC_LIMITS_H_
