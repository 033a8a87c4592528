// Loading and checking the agent's configuration file.
//
// A configuration is a textproto (.textproto, .txtpb) or JSON (.json)
// AgentConfig (proto/cloudha/v1/config.proto). Loading parses it with
// protobuf's own parsers, fills defaults, resolves relative paths against the
// file's folder and checks everything the agent would trip over later:
// ranges, names, addresses, unique ids, and the TLS files as a whole.
//
// Thread-safe: the functions keep no state.
#ifndef CLOUDHA_AGENT_AGENT_CONFIG_H_
#define CLOUDHA_AGENT_AGENT_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/host_port.h"
#include "cloudha/v1/config.pb.h"

namespace cloudha {

inline constexpr uint32_t kDefaultPriority = 128;
inline constexpr uint32_t kDefaultIntervalMs = 200;
inline constexpr uint32_t kDefaultLostThreshold = 6;
inline constexpr char kDefaultAdminSocket[] = "/run/cloudha/admin.sock";
inline constexpr char kDefaultStateDir[] = "/var/lib/cloudha";
inline constexpr uint32_t kDefaultUptimeMarginS = 300;
inline constexpr uint32_t kDefaultHelloHolddownS = 5;
inline constexpr uint32_t kDefaultOverrideWaitS = 5;
inline constexpr uint32_t kDefaultFailoverHoldS = 10;
inline constexpr uint32_t kDefaultMaxSessions = 4000000;

// One thing wrong with a configuration file.
struct ConfigProblem {
  std::string file;
  // 1-based line of the offending field; 0 when no line applies.
  int line = 0;
  std::string message;

  // "FILE:LINE: message".
  std::string ToString() const;
};

struct LoadedConfig {
  // The configuration with defaults filled and paths resolved. Meaningful
  // only when `problems` is empty.
  cloudha::v1::AgentConfig config;
  std::vector<ConfigProblem> problems;
};

// Whether loading reads and judges the TLS files. Clients that only need the
// admin socket skip them: they need not be able to read the agent's key.
enum class TlsCheck { kFull, kSkip };

// Reads, parses and checks `path`. `now` is the wall-clock time against which
// certificates must be valid.
LoadedConfig LoadAgentConfig(const std::string& path, absl::Time now,
                             TlsCheck tls_check = TlsCheck::kFull);

// Parses and checks configuration `text` as if read from `path` (whose
// extension chooses the format and whose folder anchors relative paths).
LoadedConfig ParseAgentConfig(const std::string& path, const std::string& text,
                              absl::Time now, TlsCheck tls_check = TlsCheck::kFull);

// Splits "host:port" or "[v6]:port" (base/host_port.h) with a port of
// 1..65535. INVALID_ARGUMENT names `what`.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view what, absl::string_view address);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_AGENT_CONFIG_H_
