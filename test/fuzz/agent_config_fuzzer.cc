// Fuzzes the agent's configuration loader (agent/agent_config.h
// ParseAgentConfig) with the TLS files left out (TlsCheck::kSkip: no file
// of the input's naming is read but executables' modes).
//
// Input: one byte choosing the format and the file's path (bit 0: JSON
// instead of textproto; bit 1: a relative path), then the file's text.
// Every problem must print; a configuration without problems must survive
// a round trip (printed as textproto and loaded again: no problems, the
// same message), since defaults and resolved paths are fixed points.
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "test/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool json = (data[0] & 1) != 0;
  const bool relative = (data[0] & 2) != 0;
  const std::string path = absl::StrCat(relative ? "conf/agent" : "/etc/cloudha/agent",
                                        json ? ".json" : ".textproto");
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  // A fixed "now": certificates are not read, nothing else looks at it.
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);

  cloudha::LoadedConfig loaded =
      cloudha::ParseAgentConfig(path, text, now, cloudha::TlsCheck::kSkip);
  for (const cloudha::ConfigProblem& p : loaded.problems) {
    FUZZ_CHECK(!p.message.empty(), "a problem without a message at line ", p.line);
    FUZZ_CHECK(p.line >= 0, "problem line ", p.line);
    (void)p.ToString();
  }
  if (!loaded.problems.empty()) return 0;

  std::string printed;
  FUZZ_CHECK(google::protobuf::TextFormat::PrintToString(loaded.config, &printed),
             "cannot print a loaded config");
  cloudha::LoadedConfig again = cloudha::ParseAgentConfig("/etc/cloudha/reloaded.textproto",
                                                          printed, now, cloudha::TlsCheck::kSkip);
  FUZZ_CHECK(again.problems.empty(), "a loaded config, printed, has problems: ",
             again.problems[0].ToString(), "\n", printed);
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(loaded.config, again.config),
             "a loaded config changes when loaded again:\n", printed);
  return 0;
}
