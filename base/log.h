// Structured event logging: one line per event, to stderr (journald and
// run.sh both read it), through spdlog.
//
//   TEXT: 2026-11-22T10:00:00.123Z INFO event=peer_up peer=b rtt_ms=0.41
//   JSON: {"ts":"2026-11-22T10:00:00.123Z","level":"info","event":"peer_up","peer":"b","rtt_ms":"0.41"}
//
// Thread-safe: spdlog's logger is.
#ifndef CLOUDHA_BASE_LOG_H_
#define CLOUDHA_BASE_LOG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cloudha {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

// Configures the process-wide logger. Until called, TEXT at INFO.
void ConfigureLogging(LogFormat format, LogLevel level);

// A field of an event. Values are formatted with absl::StrCat.
struct LogField {
  template <typename T>
  LogField(absl::string_view k, const T& v) : key(k), value(absl::StrCat(v)) {}
  std::string key;
  std::string value;
};

// Writes one event line: `event` names what happened (snake_case), `fields`
// say the rest.
void LogEvent(LogLevel level, absl::string_view event,
              std::initializer_list<LogField> fields = {});

// The line LogEvent would write after the timestamp and level, for tests.
std::string FormatEventForTest(LogFormat format, absl::string_view event,
                               std::initializer_list<LogField> fields);

}  // namespace cloudha

#endif  // CLOUDHA_BASE_LOG_H_
