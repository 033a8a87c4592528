#include "base/log.h"

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

}  // namespace

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
  std::string line = g_format == LogFormat::kJson ? JsonMembers(event, fields)
                                                  : Text(event, fields);
  logger.log(ToSpd(level), "{}", line);
}

}  // namespace cloudha
