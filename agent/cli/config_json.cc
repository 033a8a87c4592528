#include "agent/cli/config_json.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "sync/config_path.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kSegmentRule[] = "1-64 characters of A-Z a-z 0-9 _ -";

// One segment of a config path (the store's own rule).
bool IsPathSegment(absl::string_view s) {
  return !absl::StrContains(s, '.') && ValidateConfigPath(s).ok();
}

std::string Join(absl::string_view prefix, absl::string_view segment) {
  return prefix.empty() ? std::string(segment) : absl::StrCat(prefix, ".", segment);
}

// How an error names a place: the path, or "the top-level object" for the root.
std::string Where(absl::string_view path) {
  return path.empty() ? std::string("the top-level object") : std::string(path);
}

absl::Status ValidatePrefix(absl::string_view prefix) { return ValidateConfigPrefix(prefix); }

// --- JSON -> entries ---------------------------------------------------

// The 1-based line and column (in characters) of byte `offset` of `text`.
std::pair<int, int> LineAndColumn(absl::string_view text, size_t offset) {
  int line = 1;
  int column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;  // UTF-8 continuation bytes are part of the previous character
    }
  }
  return {line, column};
}

// protobuf's JSON parser (3.21) reports "What went wrong.\n<up to 20
// characters either side of the spot>\n<spaces>^", without a line or column.
// When that excerpt occurs once in the input, the spot is known and is
// reported as a line and column; an empty excerpt is the end of the input;
// otherwise the excerpt is quoted.
std::string DescribeParseError(absl::string_view json, absl::string_view message) {
  // A field path such as "(struct_value.fields[0]) " only says where in the
  // google.protobuf.Value the error is, which means nothing to the user.
  if (absl::StartsWith(message, "(")) {
    size_t close = message.find(") ");
    if (close != absl::string_view::npos) message.remove_prefix(close + 2);
  }
  size_t first = message.find('\n');
  size_t last = message.rfind('\n');
  if (first == absl::string_view::npos || first == last) {
    return absl::StrCat("invalid JSON: ", message);
  }
  absl::string_view what = message.substr(0, first);
  absl::string_view excerpt = message.substr(first + 1, last - first - 1);
  absl::string_view caret = message.substr(last + 1);
  size_t caret_offset = caret.find('^');
  size_t at = excerpt.empty() ? absl::string_view::npos : json.find(excerpt);
  if (at != absl::string_view::npos && caret_offset != absl::string_view::npos &&
      json.find(excerpt, at + 1) == absl::string_view::npos) {
    auto [line, column] = LineAndColumn(json, at + caret_offset);
    return absl::StrFormat("invalid JSON at line %d, column %d: %s", line, column, what);
  }
  if (excerpt.empty()) {
    auto [line, column] = LineAndColumn(json, json.size());
    return absl::StrFormat("invalid JSON at line %d, column %d (the end of the input): %s", line,
                           column, what);
  }
  return absl::StrCat("invalid JSON: ", what, " near ", JsonQuote(excerpt));
}

// The compact JSON text of a leaf that is not a string. Object keys are
// sorted (google.protobuf.Struct keeps no order), so equal documents give
// equal text.
std::string CompactJson(const Value& value) {
  switch (value.kind_case()) {
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      return "null";
    case Value::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case Value::kNumberValue: {
      // protobuf's shortest round-trip form: 8080, 1.5, 1e+20.
      std::string text;
      if (!google::protobuf::util::MessageToJsonString(value, &text).ok()) return "null";
      return text;
    }
    case Value::kStringValue:
      return JsonQuote(value.string_value());
    case Value::kListValue: {
      std::vector<std::string> items;
      for (const Value& item : value.list_value().values()) items.push_back(CompactJson(item));
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    case Value::kStructValue: {
      std::map<std::string, const Value*> sorted;
      for (const auto& [key, item] : value.struct_value().fields()) sorted[key] = &item;
      std::vector<std::string> items;
      for (const auto& [key, item] : sorted) {
        items.push_back(absl::StrCat(JsonQuote(key), ":", CompactJson(*item)));
      }
      return absl::StrCat("{", absl::StrJoin(items, ","), "}");
    }
  }
  return "null";
}

absl::Status Flatten(const Struct& object, const std::string& path,
                     std::vector<v1::ConfigEntry>* entries) {
  if (object.fields().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": empty object, nothing to store (give it keys or remove it)"));
  }
  std::map<std::string, const Value*> sorted;
  for (const auto& [key, value] : object.fields()) sorted[key] = &value;
  for (const auto& [key, value] : sorted) {
    if (!IsPathSegment(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", JsonQuote(key), " in ", Where(path), " is not a path segment (", kSegmentRule,
          absl::StrContains(key, '.') ? "; nest objects instead of writing dots)" : ")"));
    }
    std::string child = Join(path, key);
    if (value->kind_case() == Value::kStructValue) {
      absl::Status s = Flatten(value->struct_value(), child, entries);
      if (!s.ok()) return s;
      continue;
    }
    v1::ConfigEntry entry;
    entry.set_path(child);
    entry.set_value(value->kind_case() == Value::kStringValue ? value->string_value()
                                                              : CompactJson(*value));
    entries->push_back(std::move(entry));
  }
  return absl::OkStatus();
}

// --- entries -> JSON ---------------------------------------------------

struct Node {
  std::optional<std::string> value;
  std::map<std::string, Node> children;
};

// The first path (in sorted order) that holds a value and has children.
std::optional<std::string> FindConflict(const Node& node, const std::string& path) {
  if (node.value.has_value() && !node.children.empty()) return path;
  for (const auto& [key, child] : node.children) {
    std::optional<std::string> found = FindConflict(child, Join(path, key));
    if (found.has_value()) return found;
  }
  return std::nullopt;
}

void Print(const Node& node, int depth, std::string* out) {
  if (node.children.empty()) {
    absl::StrAppend(out, "{}");
    return;
  }
  const std::string indent(2 * (depth + 1), ' ');
  absl::StrAppend(out, "{\n");
  bool first = true;
  for (const auto& [key, child] : node.children) {
    if (!first) absl::StrAppend(out, ",\n");
    first = false;
    absl::StrAppend(out, indent, JsonQuote(key), ": ");
    if (child.value.has_value()) {
      absl::StrAppend(out, JsonQuote(*child.value));
    } else {
      Print(child, depth + 1, out);
    }
  }
  absl::StrAppend(out, "\n", std::string(2 * depth, ' '), "}");
}

}  // namespace

std::string NormalizeConfigPrefix(absl::string_view prefix) {
  if (absl::EndsWith(prefix, ".")) prefix.remove_suffix(1);
  return std::string(prefix);
}

absl::StatusOr<std::vector<v1::ConfigEntry>> JsonToConfigEntries(absl::string_view prefix,
                                                                 absl::string_view json) {
  absl::Status valid = ValidatePrefix(prefix);
  if (!valid.ok()) return valid;
  if (absl::StripAsciiWhitespace(json).empty()) {
    return absl::InvalidArgumentError("invalid JSON: the input is empty (expected an object)");
  }
  Value document;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &document);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(DescribeParseError(
        json, absl::string_view(parsed.message().data(), parsed.message().size())));
  }
  if (document.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        "the top level must be a JSON object whose keys are path segments, e.g. "
        "{\"system\": {\"hostname\": \"fw-1\"}}");
  }
  if (document.struct_value().fields().empty()) {
    return absl::InvalidArgumentError("the top-level object is empty: nothing to import");
  }
  std::vector<v1::ConfigEntry> entries;
  absl::Status s = Flatten(document.struct_value(), std::string(prefix), &entries);
  if (!s.ok()) return s;
  return entries;
}

absl::StatusOr<std::string> ConfigEntriesToJson(absl::string_view prefix,
                                                const std::vector<v1::ConfigEntry>& entries) {
  absl::Status valid = ValidatePrefix(prefix);
  if (!valid.ok()) return valid;
  Node root;
  for (const v1::ConfigEntry& entry : entries) {
    absl::string_view path = entry.path();
    if (path == prefix) {
      return absl::FailedPreconditionError(
          absl::StrCat(prefix,
                       " holds a value itself, and export writes only the paths below "
                       "its prefix: use `cloudha config get ",
                       prefix, "`, or export a shorter prefix"));
    }
    absl::string_view relative = path;
    if (!prefix.empty()) {
      if (!absl::StartsWith(path, prefix) || path.size() <= prefix.size() ||
          path[prefix.size()] != '.') {
        return absl::InvalidArgumentError(
            absl::StrCat("path ", JsonQuote(path), " is not below the prefix ", prefix));
      }
      relative.remove_prefix(prefix.size() + 1);
    }
    Node* node = &root;
    for (absl::string_view segment : absl::StrSplit(relative, '.')) {
      if (segment.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("path ", JsonQuote(path), " has an empty segment"));
      }
      node = &node->children[std::string(segment)];
    }
    if (node->value.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("path ", path, " is listed twice"));
    }
    node->value = entry.value();
  }
  std::optional<std::string> conflict = FindConflict(root, std::string(prefix));
  if (conflict.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        *conflict,
        " holds a value and also has paths below it (a JSON key holds a string or "
        "an object, not both): export a prefix below it, or use `cloudha config list`"));
  }
  std::string out;
  Print(root, 0, &out);
  out.push_back('\n');
  return out;
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string DisplayConfigValue(absl::string_view value) {
  bool quote = value.empty() || value == "<absent>" || value.front() == '"' ||
               value.front() == ' ' || value.back() == ' ' ||
               std::any_of(value.begin(), value.end(), [](char c) {
                 return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
               });
  return quote ? JsonQuote(value) : std::string(value);
}

}  // namespace cloudha
