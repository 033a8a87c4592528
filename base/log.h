// Structured event logging: one line per event, to stderr (run.sh reads
// it), through spdlog.
//
//   TEXT: 2026-11-22T10:00:00.123Z INFO event=peer_up peer=b rtt_ms=0.41
//   JSON: {"ts":"2026-11-22T10:00:00.123Z","level":"info","event":"peer_up","peer":"b","rtt_ms":"0.41"}
//
// When stderr is the journal (systemd sets JOURNAL_STREAM to its device and
// inode), each event goes to journald instead, through sd_journal_sendv(3):
// PRIORITY (err, warning, info, debug), MESSAGE (the line above without
// time and level), SYSLOG_IDENTIFIER=cloudha, EVENT=<event>, and each field
// as a journal field of its own (peer -> PEER=b), so that
// `journalctl -p warning` and `journalctl EVENT=role_changed` work. Should
// the journal refuse an event, it goes to stderr as a line.
//
// Thread-safe: spdlog's logger is.
#ifndef CLOUDHA_BASE_LOG_H_
#define CLOUDHA_BASE_LOG_H_

#include <cstdint>
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

// The journal fields LogEvent sends for an event ("PRIORITY=4", ...), for
// tests.
std::vector<std::string> JournalFieldsForTest(LogLevel level, absl::string_view event,
                                              std::initializer_list<LogField> fields);
// Whether JOURNAL_STREAM's value ("DEVICE:INODE") names this file.
bool JournalStreamIs(const char* journal_stream, uint64_t device, uint64_t inode);

// The line LogEvent would write after the timestamp and level, for tests.
std::string FormatEventForTest(LogFormat format, absl::string_view event,
                               std::initializer_list<LogField> fields);

}  // namespace cloudha

#endif  // CLOUDHA_BASE_LOG_H_
