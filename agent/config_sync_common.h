// Constants and small helpers the config sync files share (config_sync.cc,
// config_pusher.cc, config_replica.cc, config_admin.cc). Internal to the
// agent's config sync.
#ifndef CLOUDHA_AGENT_CONFIG_SYNC_COMMON_H_
#define CLOUDHA_AGENT_CONFIG_SYNC_COMMON_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_field.h"

namespace cloudha {
namespace config_sync {

inline std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

// "firewall." and "firewall" name the same subtree.
inline std::string NormalizePrefix(std::string prefix) {
  while (!prefix.empty() && prefix.back() == '.') prefix.pop_back();
  return prefix;
}

inline std::vector<std::string> Patterns(
    const google::protobuf::RepeatedPtrField<std::string>& p) {
  return std::vector<std::string>(p.begin(), p.end());
}

// A value in a log line or event: at most 80 characters.
inline std::string Shorten(const std::string& value) {
  if (value.size() <= 80) return value;
  return absl::StrCat(value.substr(0, 77), "...");
}

// Subtrees at most this big are sent whole when they differ; bigger ones
// are compared one level further down.
inline constexpr uint64_t kWholeSubtree = 256;
// A pull response message carries about this many bytes of entries.
inline constexpr size_t kChunkBytes = 1 << 20;
// A pusher's queue beyond this many messages means the secondary does not
// keep up: the stream restarts and the next diff sends what differs.
inline constexpr size_t kMaxOutbox = 100000;
// A watcher this far behind is ended.
inline constexpr size_t kMaxWatchQueue = 10000;
// Replacements logged one by one per resync; the rest are counted.
inline constexpr uint64_t kReplacedLogLimit = 20;
// A checksum mismatch with the primary's hello lasting this long starts a
// new diff.
inline constexpr absl::Duration kDriftGrace = absl::Seconds(3);
// Paths passed as arguments to an apply hook, at most this many bytes.
inline constexpr size_t kMaxHookArgBytes = 64 * 1024;

}  // namespace config_sync
}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CONFIG_SYNC_COMMON_H_
