// The JSON form of a config subtree, for `cloudha config export` and
// `cloudha config import`, and the quoting the other `cloudha config`
// commands print values with.
//
// The subtree under PREFIX is one JSON object: each path below PREFIX, split
// at its dots, becomes a chain of nested keys ending in the value as a JSON
// string. Under PREFIX "firewall", the entries
//   firewall.enabled = yes
//   firewall.policy.10.action = accept
// are
//   {"enabled": "yes", "policy": {"10": {"action": "accept"}}}
// Import reads the same form; leaves that are not strings (numbers, true,
// false, null, arrays) are stored as their compact JSON text ("8080",
// "true", "[1,2]"). Export always writes strings, so export -> import
// reproduces the store exactly.
//
// Thread-safe: the functions keep no state.
#ifndef CLOUDHA_AGENT_CLI_CONFIG_JSON_H_
#define CLOUDHA_AGENT_CLI_CONFIG_JSON_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// A prefix as a user typed it, with one trailing "." removed: "firewall."
// and "firewall" name the same subtree, "." and "" the root.
std::string NormalizeConfigPrefix(absl::string_view prefix);

// The entries the JSON object `json` describes under `prefix` ("" is the
// root), sorted by path. INVALID_ARGUMENT, naming the place, when:
//   - `json` is not valid JSON ("invalid JSON at line 3, column 10: ..."
//     when the position is known) or its top level is not an object;
//   - a key is not one path segment (1-64 of A-Z a-z 0-9 _ -);
//   - an object is empty, at the top level or below (it stores nothing);
//   - `prefix` is not a valid prefix.
// Value revisions are left 0.
absl::StatusOr<std::vector<v1::ConfigEntry>> JsonToConfigEntries(absl::string_view prefix,
                                                                 absl::string_view json);

// The pretty-printed JSON object (two-space indent, keys sorted, ending in a
// newline) of `entries`, which must all lie below `prefix`; no entries give
// "{}". FAILED_PRECONDITION naming the path when a path holds a value and
// also has paths below it (or `prefix` itself holds a value): a JSON object
// cannot say both. INVALID_ARGUMENT when an entry is not below `prefix` or
// two entries share a path.
absl::StatusOr<std::string> ConfigEntriesToJson(absl::string_view prefix,
                                                const std::vector<v1::ConfigEntry>& entries);

// `text` as a JSON string literal: in double quotes, with '"', '\\' and
// control characters escaped ("\n", "\u0001"); other characters, UTF-8
// included, as they are.
std::string JsonQuote(absl::string_view text);

// How the line-oriented commands (list, watch, diff) show a value: as it is
// when that is unambiguous on one line, else as JsonQuote(value) -- when it
// is empty, holds a control character (a newline, a tab), starts with '"',
// starts or ends with a space, or is "<absent>".
std::string DisplayConfigValue(absl::string_view value);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_CONFIG_JSON_H_
