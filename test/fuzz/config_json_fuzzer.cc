// Fuzzes the JSON form of a config subtree (agent/cli/config_json.h), what
// `cloudha config import` reads from a user's file.
//
// Input: the prefix, a newline, then the JSON document. An import that is
// accepted must give sorted, unique entries below the prefix; exporting
// them must work, and importing the export must give them back (the
// header's "export -> import reproduces the store exactly"). The quoting
// helpers run on every value and key.
#include <cstdint>
#include <string>
#include <vector>

#include "agent/cli/config_json.h"
#include "sync/config_path.h"
#include "test/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudha;  // NOLINT: a harness
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  if (newline == absl::string_view::npos) return 0;
  const std::string prefix = NormalizeConfigPrefix(input.substr(0, newline));
  const absl::string_view json = input.substr(newline + 1);

  absl::StatusOr<std::vector<v1::ConfigEntry>> entries = JsonToConfigEntries(prefix, json);
  if (!entries.ok()) {
    FUZZ_CHECK(entries.status().code() == absl::StatusCode::kInvalidArgument,
               entries.status().ToString());
    return 0;
  }
  FUZZ_CHECK(!entries->empty(), "an accepted import has no entries");
  for (size_t i = 0; i < entries->size(); ++i) {
    const v1::ConfigEntry& e = (*entries)[i];
    FUZZ_CHECK(InConfigSubtree(e.path(), prefix) && e.path() != prefix, "entry ", e.path(),
               " is not below \"", prefix, "\"");
    if (i > 0) FUZZ_CHECK((*entries)[i - 1].path() < e.path(), "entries not sorted and unique");
    (void)DisplayConfigValue(e.value());
  }

  absl::StatusOr<std::string> exported = ConfigEntriesToJson(prefix, *entries);
  FUZZ_CHECK(exported.ok(), "export of an import fails: ", exported.status().ToString());
  absl::StatusOr<std::vector<v1::ConfigEntry>> again = JsonToConfigEntries(prefix, *exported);
  FUZZ_CHECK(again.ok(), "import of an export fails: ", again.status().ToString(), "\n",
             *exported);
  FUZZ_CHECK(again->size() == entries->size(), "round trip gives ", again->size(), " entries, not ",
             entries->size());
  for (size_t i = 0; i < again->size(); ++i) {
    FUZZ_CHECK((*again)[i].path() == (*entries)[i].path() &&
                   (*again)[i].value() == (*entries)[i].value(),
               "entry ", (*entries)[i].path(), " changes in a round trip");
  }
  return 0;
}
