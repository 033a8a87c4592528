#include "agent/cli/config_command.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/cli/config_json.h"
#include "base/secure_file.h"
#include "grpcpp/grpcpp.h"

namespace cloudha {
namespace {

// A single agent answers at once; diff and checksum --cluster wait for the
// agent to ask its peers; an import may be a large commit.
constexpr std::chrono::seconds kLocalTimeout(10);
constexpr std::chrono::seconds kPeerTimeout(30);
constexpr std::chrono::seconds kImportTimeout(60);

// Hex digits of a checksum shown: 64 bits tell subtrees apart in practice.
constexpr size_t kChecksumDigits = 16;

void SetTimeout(grpc::ClientContext* context, std::chrono::seconds timeout) {
  context->set_deadline(std::chrono::system_clock::now() + timeout);
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// The agent, as one subcommand talks to it: the socket, a stub on it, and
// how failures are printed. Not thread-safe; one per command.
class Agent {
 public:
  // Resolves the socket; nullopt after printing why it cannot.
  static std::optional<Agent> Open(const AdminTarget& target, const char* verb) {
    absl::StatusOr<std::string> socket = ResolveAdminSocket(target);
    if (!socket.ok()) {
      std::cerr << "cloudha config " << verb << ": " << socket.status().message() << "\n";
      return std::nullopt;
    }
    return Agent(verb, *socket);
  }

  v1::AdminService::Stub* stub() { return stub_.get(); }

  // Prints "cloudha config VERB: MESSAGE" to stderr; returns 1.
  int Fail(absl::string_view message) const {
    std::cerr << "cloudha config " << verb_ << ": " << message << "\n";
    return 1;
  }

  // Prints a failed call with its status code and the agent's message;
  // returns 1.
  int Fail(const grpc::Status& s) const {
    std::string line = absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        return Fail(absl::StrCat("cannot reach the agent at ", socket_, ": ", line));
      case grpc::StatusCode::UNIMPLEMENTED:
        return Fail(absl::StrCat(line, " (the agent at ", socket_,
                                 " has no config store: is it older than this cloudha?)"));
      default:
        return Fail(line);
    }
  }

 private:
  Agent(const char* verb, std::string socket)
      : verb_(verb), socket_(std::move(socket)), stub_(ConnectAdmin(socket_)) {}

  const char* verb_;
  std::string socket_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

// A file's content, or standard input's for "-".
absl::StatusOr<std::string> ReadInput(const std::string& file) {
  if (file != "-") return ReadSmallFile(file);
  std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  if (std::cin.bad()) return absl::DataLossError("cannot read standard input");
  return text;
}

std::string EntryJson(const v1::ConfigEntry& e) {
  return absl::StrCat("{\"path\":", JsonQuote(e.path()), ",\"value\":", JsonQuote(e.value()),
                      ",\"revision\":", e.revision(), "}");
}

// Whether `path` is `prefix` or below it ("" holds every path).
bool InSubtree(absl::string_view path, absl::string_view prefix) {
  if (prefix.empty() || path == prefix) return true;
  return path.size() > prefix.size() && absl::StartsWith(path, prefix) &&
         path[prefix.size()] == '.';
}

std::string Patterns(const google::protobuf::RepeatedPtrField<std::string>& patterns) {
  return patterns.empty() ? std::string("none") : absl::StrJoin(patterns, ", ");
}

// An error about `node` without the "node: " the agent may have put first.
absl::string_view ErrorOf(absl::string_view node, absl::string_view error) {
  absl::ConsumePrefix(&error, absl::StrCat(node, ": "));
  return error;
}

// --- checksum table ------------------------------------------------------

using Subtree = v1::ConfigChecksums::Subtree;

// A row: a subtree, or with `exact` the single entry at that path.
struct RowKey {
  std::string prefix;
  bool exact = false;
  bool operator<(const RowKey& o) const {
    return prefix != o.prefix ? prefix < o.prefix : exact > o.exact;
  }
};

// What a cell compares: an absent subtree and an empty one are the same.
std::string Fingerprint(const Subtree* s) {
  if (s == nullptr || s->entries() == 0) return "";
  return absl::StrCat(s->checksum(), "/", s->entries());
}

struct ChecksumTable {
  std::vector<RowKey> rows;
  // Per node (response order), the subtree of each row it reported.
  std::vector<std::map<RowKey, const Subtree*>> cells;
  // Per row: "match", "DIFFERS", or "-" when fewer than two nodes answered.
  std::vector<std::string> verdicts;
  bool differs = false;
};

ChecksumTable BuildTable(const v1::ConfigChecksumsResponse& r, const std::string& prefix) {
  ChecksumTable t;
  std::map<RowKey, bool> seen;
  for (const auto& node : r.nodes()) {
    std::map<RowKey, const Subtree*>& cells = t.cells.emplace_back();
    for (const Subtree& s : node.subtrees()) {
      RowKey key{s.prefix(), s.exact()};
      cells[key] = &s;
      seen[key] = true;
    }
  }
  // The prefix's own subtree first, then the rest sorted.
  const RowKey top{prefix, false};
  if (seen.count(top) > 0) t.rows.push_back(top);
  for (const auto& [key, unused] : seen) {
    if (key.prefix != top.prefix || key.exact != top.exact) t.rows.push_back(key);
  }
  int answered = 0;
  for (const auto& node : r.nodes()) answered += node.error().empty() ? 1 : 0;
  for (const RowKey& key : t.rows) {
    std::optional<std::string> first;
    bool same = true;
    for (int i = 0; i < r.nodes_size(); ++i) {
      if (!r.nodes(i).error().empty()) continue;
      auto it = t.cells[i].find(key);
      std::string f = Fingerprint(it == t.cells[i].end() ? nullptr : it->second);
      if (!first.has_value()) first = f;
      same = same && f == *first;
    }
    t.verdicts.push_back(answered < 2 ? "-" : same ? "match" : "DIFFERS");
    t.differs = t.differs || !same;
  }
  return t;
}

std::string Hex(const std::string& bytes) {
  return absl::BytesToHexString(bytes).substr(0, kChecksumDigits);
}

void AppendRow(const std::vector<std::string>& cells, const std::vector<size_t>& widths,
               std::string* out) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    absl::StrAppend(&line, cells[i]);
    if (i + 1 < cells.size()) {
      line.append(widths[i] + 2 - std::min(widths[i], cells[i].size()), ' ');
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  absl::StrAppend(out, line, "\n");
}

}  // namespace

std::string FormatConfigChange(const v1::WatchConfigResponse& change) {
  std::string out;
  for (const v1::ConfigEntry& e : change.puts()) {
    absl::StrAppend(&out, "rev ", change.revision(), " set ", e.path(), " = ",
                    DisplayConfigValue(e.value()), "\n");
  }
  for (const std::string& path : change.deletes()) {
    absl::StrAppend(&out, "rev ", change.revision(), " delete ", path, "\n");
  }
  return out;
}

std::string FormatConfigDiff(const v1::DiffConfigResponse& diff) {
  std::string out = absl::StrCat("local exclusions: ", Patterns(diff.exclude()), "\n");
  if (diff.peers().empty()) absl::StrAppend(&out, "no peers to compare with\n");
  for (const auto& peer : diff.peers()) {
    if (!peer.error().empty()) {
      // Paths hold no spaces, so this line cannot be read as a difference.
      absl::StrAppend(&out, "peer ", peer.peer(),
                      ":\n  cannot compare: ", ErrorOf(peer.peer(), peer.error()), "\n");
      continue;
    }
    absl::StrAppend(&out, "peer ", peer.peer(),
                    " (effective exclusions: ", Patterns(peer.exclude()), "):\n");
    if (peer.differences().empty()) absl::StrAppend(&out, "  identical\n");
    for (const auto& d : peer.differences()) {
      absl::StrAppend(
          &out, "  ", d.path(),
          ": local=", d.has_local_value() ? DisplayConfigValue(d.local_value()) : "<absent>",
          " peer=", d.has_peer_value() ? DisplayConfigValue(d.peer_value()) : "<absent>", "\n");
    }
  }
  return out;
}

std::string FormatConfigChecksums(const v1::ConfigChecksumsResponse& checksums,
                                  const std::string& prefix, bool cluster) {
  ChecksumTable t = BuildTable(checksums, prefix);
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> header = {"subtree"};
  for (const auto& node : checksums.nodes()) header.push_back(node.node_id());
  if (cluster) header.push_back("");
  lines.push_back(header);
  for (size_t row = 0; row < t.rows.size(); ++row) {
    const RowKey& key = t.rows[row];
    std::string label = key.prefix.empty() ? "(root)" : key.prefix;
    if (key.exact) absl::StrAppend(&label, " (value)");
    std::vector<std::string> line = {label};
    for (int i = 0; i < checksums.nodes_size(); ++i) {
      auto it = t.cells[i].find(key);
      if (!checksums.nodes(i).error().empty()) {
        line.push_back("error");
      } else {
        line.push_back(it == t.cells[i].end() ? "-" : Hex(it->second->checksum()));
      }
    }
    if (cluster) line.push_back(t.verdicts[row]);
    lines.push_back(line);
  }
  std::vector<std::string> revisions = {"revision"};
  for (const auto& node : checksums.nodes()) {
    revisions.push_back(node.error().empty() ? absl::StrCat(node.revision()) : "error");
  }
  lines.push_back(revisions);

  std::vector<size_t> widths(header.size(), 0);
  for (const auto& line : lines) {
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  }
  std::string out = absl::StrCat("exclusions: ", Patterns(checksums.exclude()), "\n");
  for (const auto& line : lines) AppendRow(line, widths, &out);
  for (const auto& node : checksums.nodes()) {
    if (!node.error().empty()) {
      absl::StrAppend(&out, node.node_id(), ": error: ", ErrorOf(node.node_id(), node.error()),
                      "\n");
    }
  }
  return out;
}

int RunConfigGet(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "get");
  if (!agent.has_value()) return 1;
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::GetConfigRequest request;
  request.set_path(options.path);
  v1::GetConfigResponse response;
  grpc::Status s = agent->stub()->GetConfig(&context, request, &response);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return agent->Fail(absl::StrCat(options.path, ": not set"));
  }
  if (!s.ok()) return agent->Fail(s);
  const std::string& value = response.entry().value();
  if (options.json) {
    std::cout << EntryJson(response.entry()) << "\n";
  } else {
    // Raw, and newline-terminated unless it already is.
    std::cout << value << (absl::EndsWith(value, "\n") ? "" : "\n");
  }
  return 0;
}

int RunConfigSet(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "set");
  if (!agent.has_value()) return 1;
  v1::PutConfigRequest request;
  request.set_path(options.path);
  if (options.value == "-") {
    absl::StatusOr<std::string> value = ReadInput("-");
    if (!value.ok()) return agent->Fail(value.status().message());
    request.set_value(*value);
  } else {
    request.set_value(options.value);
  }
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::PutConfigResponse response;
  grpc::Status s = agent->stub()->PutConfig(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  std::cout << "revision " << response.revision() << "\n";
  return 0;
}

int RunConfigDelete(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "delete");
  if (!agent.has_value()) return 1;
  v1::DeleteConfigRequest request;
  // "." (the whole store) goes as is: the agent refuses a recursive delete
  // of an empty path, so the root is never deleted by accident.
  request.set_path(options.recursive && options.path != "."
                       ? NormalizeConfigPrefix(options.path)
                       : options.path);
  request.set_recursive(options.recursive);
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::DeleteConfigResponse response;
  grpc::Status s = agent->stub()->DeleteConfig(&context, request, &response);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return agent->Fail(absl::StrCat(options.path, ": not set"));
  }
  if (!s.ok()) return agent->Fail(s);
  std::cout << "deleted " << response.deleted() << " paths, revision " << response.revision()
            << "\n";
  return 0;
}

int RunConfigList(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "list");
  if (!agent.has_value()) return 1;
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::ListConfigRequest request;
  request.set_prefix(NormalizeConfigPrefix(options.path));
  v1::ListConfigResponse response;
  grpc::Status s = agent->stub()->ListConfig(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  if (options.json) {
    std::vector<std::string> items;
    for (const v1::ConfigEntry& e : response.entries()) items.push_back(EntryJson(e));
    std::cout << (items.empty() ? "[]"
                                : absl::StrCat("[\n  ", absl::StrJoin(items, ",\n  "), "\n]"))
              << "\n";
    return 0;
  }
  for (const v1::ConfigEntry& e : response.entries()) {
    std::cout << e.path() << " = " << DisplayConfigValue(e.value()) << "\n";
  }
  return 0;
}

int RunConfigHistory(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "history");
  if (!agent.has_value()) return 1;
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::ConfigHistoryRequest request;
  request.set_prefix(NormalizeConfigPrefix(options.path));
  request.set_limit(options.limit);
  v1::ConfigHistoryResponse response;
  grpc::Status s = agent->stub()->ConfigHistory(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  for (const v1::ConfigHistoryResponse::Change& c : response.changes()) {
    std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ",
                                        absl::FromUnixMillis(c.unix_ms()), absl::UTCTimeZone());
    if (c.has_value()) {
      std::cout << when << "  rev " << c.revision() << " set " << c.path() << " = "
                << DisplayConfigValue(c.value()) << "\n";
    } else {
      std::cout << when << "  rev " << c.revision() << " delete " << c.path() << "\n";
    }
  }
  return 0;
}

int RunConfigWatch(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "watch");
  if (!agent.has_value()) return 1;
  grpc::ClientContext context;
  if (options.for_s > 0) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(
                             std::chrono::duration<double>(options.for_s)));
  }
  v1::WatchConfigRequest request;
  request.set_prefix(NormalizeConfigPrefix(options.path));
  std::unique_ptr<grpc::ClientReader<v1::WatchConfigResponse>> reader =
      agent->stub()->WatchConfig(&context, request);
  v1::WatchConfigResponse change;
  uint64_t commits = 0;
  bool done = false;
  while (!done && reader->Read(&change)) {
    // A message without changes says nothing to print (it may mark the
    // start of the watch).
    if (change.puts().empty() && change.deletes().empty()) continue;
    std::cout << FormatConfigChange(change) << std::flush;
    done = options.count > 0 && ++commits >= options.count;
  }
  if (done) context.TryCancel();
  grpc::Status s = reader->Finish();
  if (done) return 0;
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && options.for_s > 0) return 0;
  if (!s.ok()) return agent->Fail(s);
  return 0;
}

int RunConfigExport(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "export");
  if (!agent.has_value()) return 1;
  const std::string prefix = NormalizeConfigPrefix(options.path);
  grpc::ClientContext context;
  SetTimeout(&context, kLocalTimeout);
  v1::ListConfigRequest request;
  request.set_prefix(prefix);
  v1::ListConfigResponse response;
  grpc::Status s = agent->stub()->ListConfig(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  std::vector<v1::ConfigEntry> entries;
  for (const v1::ConfigEntry& e : response.entries()) {
    if (InSubtree(e.path(), prefix)) entries.push_back(e);
  }
  absl::StatusOr<std::string> json = ConfigEntriesToJson(prefix, entries);
  if (!json.ok()) return agent->Fail(json.status().message());
  if (options.output.empty()) {
    std::cout << *json;
    return 0;
  }
  absl::Status written = WriteFileAtomically(options.output, *json, 0600, Overwrite::kReplace);
  if (!written.ok()) return agent->Fail(written.message());
  std::cout << "exported " << entries.size() << " paths to " << options.output << " (revision "
            << response.revision() << ")\n";
  return 0;
}

int RunConfigImport(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "import");
  if (!agent.has_value()) return 1;
  const std::string prefix = NormalizeConfigPrefix(options.path);
  const std::string source = options.file == "-" ? std::string("stdin") : options.file;
  absl::StatusOr<std::string> text = ReadInput(options.file);
  if (!text.ok()) return agent->Fail(text.status().message());
  absl::StatusOr<std::vector<v1::ConfigEntry>> entries = JsonToConfigEntries(prefix, *text);
  if (!entries.ok()) return agent->Fail(absl::StrCat(source, ": ", entries.status().message()));
  v1::PutConfigRequest request;
  for (v1::ConfigEntry& e : *entries) *request.add_entries() = std::move(e);
  // Replacing the whole store takes an explicit "."; without a PREFIX the
  // agent refuses to replace (so a subtree's export imported without its
  // prefix cannot delete the rest of the store).
  request.set_prefix(options.path == "." ? "." : prefix);
  request.set_replace(!options.merge);
  grpc::ClientContext context;
  SetTimeout(&context, kImportTimeout);
  v1::PutConfigResponse response;
  grpc::Status s = agent->stub()->PutConfig(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  std::cout << "imported " << request.entries_size() << " paths, revision " << response.revision()
            << "\n";
  return 0;
}

int RunConfigDiff(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "diff");
  if (!agent.has_value()) return 1;
  grpc::ClientContext context;
  SetTimeout(&context, kPeerTimeout);
  v1::DiffConfigRequest request;
  request.set_peer(options.peer);
  request.set_prefix(NormalizeConfigPrefix(options.path));
  v1::DiffConfigResponse response;
  grpc::Status s = agent->stub()->DiffConfig(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  std::cout << FormatConfigDiff(response);
  for (const auto& peer : response.peers()) {
    if (!peer.error().empty() || !peer.differences().empty()) return 1;
  }
  return 0;
}

int RunConfigChecksum(const ConfigOptions& options) {
  std::optional<Agent> agent = Agent::Open(options.target, "checksum");
  if (!agent.has_value()) return 1;
  const std::string prefix = NormalizeConfigPrefix(options.path);
  grpc::ClientContext context;
  SetTimeout(&context, options.cluster ? kPeerTimeout : kLocalTimeout);
  v1::ConfigChecksumsRequest request;
  request.set_cluster(options.cluster);
  request.set_prefix(prefix);
  v1::ConfigChecksumsResponse response;
  grpc::Status s = agent->stub()->ConfigChecksums(&context, request, &response);
  if (!s.ok()) return agent->Fail(s);
  std::cout << FormatConfigChecksums(response, prefix, options.cluster);
  if (!options.cluster) return 0;
  for (const auto& node : response.nodes()) {
    if (!node.error().empty()) return 1;
  }
  return BuildTable(response, prefix).differs ? 1 : 0;
}

}  // namespace cloudha
