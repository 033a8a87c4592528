#include "base/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <syslog.h>

#include <atomic>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace cloudha {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

spdlog::logger& Logger() {
  // Created once; spdlog loggers are thread-safe (the _mt sink).
  static spdlog::logger* logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("cloudha", sink);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%L%$ %v", spdlog::pattern_time_type::utc);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

bool NeedsQuotes(absl::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || !absl::ascii_isprint(c)) return true;
  }
  return false;
}

std::string Text(absl::string_view event, std::initializer_list<LogField> fields) {
  std::string out = absl::StrCat("event=", event);
  for (const LogField& f : fields) {
    absl::StrAppend(&out, " ", f.key, "=");
    if (NeedsQuotes(f.value)) {
      absl::StrAppend(&out, "\"", absl::CEscape(f.value), "\"");
    } else {
      absl::StrAppend(&out, f.value);
    }
  }
  return out;
}

// The fields as JSON members without the enclosing braces, escaped by
// protobuf's JSON printer.
std::string JsonMembers(absl::string_view event, std::initializer_list<LogField> fields) {
  google::protobuf::Struct s;
  auto& map = *s.mutable_fields();
  map["event"].set_string_value(std::string(event));
  for (const LogField& f : fields) map[f.key].set_string_value(f.value);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(s, &json).ok() || json.size() < 2) {
    return absl::StrCat("\"event\":\"", absl::CEscape(event), "\"");
  }
  return json.substr(1, json.size() - 2);
}

spdlog::level::level_enum ToSpd(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return LOG_DEBUG;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kWarn:
      return LOG_WARNING;
    case LogLevel::kError:
      return LOG_ERR;
  }
  return LOG_INFO;
}

// A field name the journal takes: [A-Z0-9_], not starting with a digit or
// '_'; names the journal or this logger use themselves get a FIELD_ prefix.
std::string JournalName(absl::string_view key) {
  static const std::set<std::string>* reserved = new std::set<std::string>{
      "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO",
      "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
      "INVOCATION_ID", "USER_INVOCATION_ID", "TID", "UNIT", "USER_UNIT", "DOCUMENTATION",
      "EVENT"};
  std::string name;
  for (char c : key) name += absl::ascii_isalnum(c) ? absl::ascii_toupper(c) : '_';
  if (name.empty() || reserved->count(name) != 0 || absl::ascii_isdigit(name[0]) ||
      name[0] == '_') {
    name = "FIELD_" + name;
  }
  return name.substr(0, 64);
}

std::vector<std::string> JournalFields(LogLevel level, absl::string_view event,
                                       std::initializer_list<LogField> fields) {
  std::vector<std::string> out;
  out.push_back(absl::StrCat("PRIORITY=", SyslogPriority(level)));
  out.push_back("SYSLOG_IDENTIFIER=cloudha");
  out.push_back(absl::StrCat("MESSAGE=", Text(event, fields)));
  out.push_back(absl::StrCat("EVENT=", event));
  for (const LogField& f : fields) out.push_back(absl::StrCat(JournalName(f.key), "=", f.value));
  return out;
}

// Whether stderr is the journal, decided once.
bool StderrIsJournal() {
  static const bool journal = [] {
    struct stat st;
    const char* stream = getenv("JOURNAL_STREAM");
    return stream != nullptr && fstat(2, &st) == 0 &&
           JournalStreamIs(stream, static_cast<uint64_t>(st.st_dev),
                           static_cast<uint64_t>(st.st_ino));
  }();
  return journal;
}

bool SendToJournal(LogLevel level, absl::string_view event,
                   std::initializer_list<LogField> fields) {
  // sd_journal_sendv succeeds silently when journald's socket is missing
  // (a stopped or restarting journald): the line goes to stderr then.
  struct stat st;
  if (stat("/run/systemd/journal/socket", &st) != 0) return false;
  std::vector<std::string> entries = JournalFields(level, event, fields);
  std::vector<iovec> iov;
  for (std::string& e : entries) iov.push_back({e.data(), e.size()});
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) == 0;
}

}  // namespace

bool JournalStreamIs(const char* journal_stream, uint64_t device, uint64_t inode) {
  std::vector<std::string> parts = absl::StrSplit(journal_stream, ':');
  uint64_t d = 0, i = 0;
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], &d) && absl::SimpleAtoi(parts[1], &i) &&
         d == device && i == inode;
}

std::vector<std::string> JournalFieldsForTest(LogLevel level, absl::string_view event,
                                              std::initializer_list<LogField> fields) {
  return JournalFields(level, event, fields);
}

void ConfigureLogging(LogFormat format, LogLevel level) {
  g_format = format;
  spdlog::logger& logger = Logger();
  logger.set_level(ToSpd(level));
  if (format == LogFormat::kJson) {
    logger.set_pattern("{\"ts\":\"%Y-%m-%dT%H:%M:%S.%eZ\",\"level\":\"%l\",%v}",
                       spdlog::pattern_time_type::utc);
  } else {
    logger.set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%L%$ %v", spdlog::pattern_time_type::utc);
  }
}

std::string FormatEventForTest(LogFormat format, absl::string_view event,
                               std::initializer_list<LogField> fields) {
  return format == LogFormat::kJson ? JsonMembers(event, fields) : Text(event, fields);
}

void LogEvent(LogLevel level, absl::string_view event, std::initializer_list<LogField> fields) {
  spdlog::logger& logger = Logger();
  if (!logger.should_log(ToSpd(level))) return;
  if (StderrIsJournal() && SendToJournal(level, event, fields)) return;
  std::string line = g_format == LogFormat::kJson ? JsonMembers(event, fields)
                                                  : Text(event, fields);
  logger.log(ToSpd(level), "{}", line);
}

}  // namespace cloudha
