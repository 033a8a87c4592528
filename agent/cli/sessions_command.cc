#include "agent/cli/sessions_command.h"

#include <arpa/inet.h>

#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cloudha/v1/admin.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "sync/session_record.h"

namespace cloudha {
namespace {

std::string Address(const std::string& bytes) {
  char text[INET6_ADDRSTRLEN] = {};
  int family = bytes.size() == 16 ? AF_INET6 : AF_INET;
  if (inet_ntop(family, bytes.data(), text, sizeof(text)) == nullptr) return "?";
  return text;
}

// Like `conntrack -L`: proto, state, timeout, original, reply, mark, zone.
std::string Line(const v1::Session& s) {
  std::string state =
      s.tcp_state() == v1::TCP_STATE_NONE ? "" : v1::TcpState_Name(s.tcp_state()).substr(4);
  std::string line = absl::StrCat(ProtocolName(static_cast<uint8_t>(s.l4_protocol())), " ", state.empty() ? "" : state + " ",
                                  s.timeout_s(), "s src=", Address(s.original().src_addr()),
                                  " dst=", Address(s.original().dst_addr()),
                                  " sport=", s.original().src_port(),
                                  " dport=", s.original().dst_port(),
                                  " reply src=", Address(s.reply().src_addr()),
                                  " dst=", Address(s.reply().dst_addr()),
                                  " sport=", s.reply().src_port(),
                                  " dport=", s.reply().dst_port());
  if (s.mark() != 0) absl::StrAppend(&line, " mark=", s.mark());
  if (s.zone() != 0) absl::StrAppend(&line, " zone=", s.zone());
  return line;
}

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

int PrintLag(v1::AdminService::Stub* stub, const std::string& socket, bool json) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::StatusResponse status;
  grpc::Status s = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  if (!s.ok()) {
    std::cerr << "cloudha sessions: cannot reach the agent at " << socket << ": "
              << s.error_message() << "\n";
    return 1;
  }
  if (!status.has_sessions()) {
    std::cerr << "cloudha sessions: session pickup is off on " << status.node_id() << "\n";
    return 1;
  }
  if (json) {
    v1::StatusResponse only;
    only.set_node_id(status.node_id());
    only.set_role(status.role());
    only.set_sync_state(status.sync_state());
    *only.mutable_sessions() = status.sessions();
    for (const v1::PeerStatus& p : status.peers()) {
      if (p.has_sessions()) {
        v1::PeerStatus* q = only.add_peers();
        q->set_id(p.id());
        *q->mutable_sessions() = p.sessions();
      }
    }
    std::cout << Json(only) << "\n";
    return 0;
  }
  const v1::SessionSyncStatus& ss = status.sessions();
  std::cout << status.node_id() << " " << v1::Role_Name(status.role()) << " "
            << v1::SyncState_Name(status.sync_state()) << ": " << ss.table_size()
            << " sessions, position " << ss.position() << ", source " << ss.source() << "\n";
  if (status.role() == v1::PRIMARY) {
    for (const v1::PeerStatus& p : status.peers()) {
      if (!p.has_sessions()) continue;
      const v1::PeerSessionStatus& ps = p.sessions();
      std::cout << "  to " << p.id() << ": " << ps.state() << ", acked " << ps.acked_position()
                << ", lag " << ps.lag_entries() << " changes / " << ps.lag_ms() << " ms, "
                << ps.snapshots() << " snapshots, " << ps.resumes() << " resumes\n";
    }
  } else {
    std::cout << "  from " << (ss.replica_of().empty() ? "(no stream)" : ss.replica_of())
              << ": lag " << ss.lag_entries() << " changes / " << ss.lag_ms() << " ms, "
              << ss.snapshots() << " bulk syncs, " << ss.resumes() << " resumes\n";
  }
  if (!ss.commit().empty()) {
    std::cout << "  kernel (commit " << ss.commit() << "): " << ss.kernel_written()
              << " written, " << ss.kernel_deleted() << " deleted, " << ss.kernel_failed()
              << " failed";
    if (ss.promotion_commit_ms() > 0) {
      std::cout << "; last promotion wrote " << ss.promotion_committed() << " in "
                << ss.promotion_commit_ms() << " ms";
    }
    std::cout << "\n";
  }
  if (ss.refused_max_sessions() > 0) {
    std::cout << "  refused (max_sessions): " << ss.refused_max_sessions() << "\n";
  }
  if (ss.batches_refused() > 0) std::cout << "  batches refused: " << ss.batches_refused() << "\n";
  if (ss.overruns() > 0) std::cout << "  conntrack overruns: " << ss.overruns() << "\n";
  if (!ss.last_error().empty()) std::cout << "  last error: " << ss.last_error() << "\n";
  return 0;
}

// Upserts and deletes per PublishSessions message: about 100 KB.
constexpr int kPublishPerMessage = 1000;

// A JSON parser's complaint, without the context lines it adds after it.
absl::string_view View(const google::protobuf::StringPiece& piece) {
  absl::string_view text(piece.data(), piece.size());
  return absl::StripAsciiWhitespace(text.substr(0, text.find('\n')));
}

// The messages a publish input makes, in the order of its lines: a message
// holds upserts, then deletes (the order the agent applies them in), so an
// upsert after a delete starts the next one.
struct PublishInput {
  std::vector<v1::PublishSessionsRequest> messages;
};

absl::StatusOr<PublishInput> ReadPublishInput(std::istream& in, const std::string& name,
                                              int64_t now_ms) {
  PublishInput input;
  v1::PublishSessionsRequest current;
  auto flush = [&] {
    if (current.upserts_size() + current.deletes_size() == 0) return;
    input.messages.push_back(std::move(current));
    current.Clear();
  };
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto problem = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat(name, ":", number, ": ", what));
    };
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty()) continue;
    google::protobuf::StringPiece json(text.data(), text.size());
    google::protobuf::Struct object;
    if (auto parsed = google::protobuf::util::JsonStringToMessage(json, &object); !parsed.ok()) {
      return problem(absl::StrCat("not a JSON object (", View(parsed.message()), ")"));
    }
    auto del = object.fields().find("delete");
    if (del != object.fields().end()) {
      if (object.fields_size() != 1) {
        return problem("a delete is {\"delete\": SESSION_KEY} with nothing beside it");
      }
      std::string key_json;
      (void)google::protobuf::util::MessageToJsonString(del->second, &key_json);
      v1::SessionKey key;
      if (auto parsed = google::protobuf::util::JsonStringToMessage(key_json, &key);
          !parsed.ok()) {
        return problem(absl::StrCat("delete: not a cloudha.v1.SessionKey (",
                                    View(parsed.message()), ")"));
      }
      if (absl::StatusOr<SessionKey> k = KeyFromProto(key); !k.ok()) {
        return problem(absl::StrCat("delete: ", k.status().message()));
      }
      if (current.deletes_size() >= kPublishPerMessage) flush();
      *current.add_deletes() = std::move(key);
    } else {
      v1::Session session;
      if (auto parsed = google::protobuf::util::JsonStringToMessage(json, &session);
          !parsed.ok()) {
        return problem(absl::StrCat("not a cloudha.v1.Session (", View(parsed.message()), ")"));
      }
      if (!session.has_reply()) {
        // As `conntrack -I` without a reply tuple: the original reversed.
        const v1::Tuple& o = session.original();
        v1::Tuple* r = session.mutable_reply();
        r->set_src_addr(o.dst_addr());
        r->set_dst_addr(o.src_addr());
        const bool icmp = session.l4_protocol() == 1 || session.l4_protocol() == 58;
        r->set_src_port(icmp ? o.src_port() : o.dst_port());
        r->set_dst_port(icmp ? o.dst_port() : o.src_port());
      }
      if (session.created_ms() == 0) session.set_created_ms(now_ms);
      if (session.last_update_ms() == 0) session.set_last_update_ms(now_ms);
      if (absl::StatusOr<SessionRecord> r = RecordFromProto(session); !r.ok()) {
        return problem(r.status().message());
      }
      if (current.deletes_size() > 0 || current.upserts_size() >= kPublishPerMessage) flush();
      *current.add_upserts() = std::move(session);
    }
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat(name, ": cannot read"));
  flush();
  return input;
}

}  // namespace

int RunSessions(const SessionsOptions& options) {
  absl::StatusOr<std::string> socket = ResolveAdminSocket(options.target);
  if (!socket.ok()) {
    std::cerr << "cloudha sessions: " << socket.status().message() << "\n";
    return 1;
  }
  auto stub = ConnectAdmin(*socket);
  if (options.lag) return PrintLag(stub.get(), *socket, options.json);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::ListSessionsRequest request;
  request.set_limit(options.limit);
  request.set_count_only(options.count);
  for (const std::string& f : options.filters) request.add_filters(f);
  auto reader = stub->ListSessions(&context, request);
  v1::ListSessionsResponse chunk;
  uint64_t shown = 0;
  uint64_t total = 0;
  bool first = true;
  while (reader->Read(&chunk)) {
    if (first) total = chunk.total();
    first = false;
    if (options.count) continue;
    for (const v1::Session& s : chunk.sessions()) {
      std::cout << (options.json ? Json(s) : Line(s)) << "\n";
      ++shown;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::cerr << "cloudha sessions: cannot reach the agent at " << *socket << ": "
                << s.error_message() << "\n";
    } else {
      std::cerr << "cloudha sessions: " << s.error_message() << "\n";
    }
    return 1;
  }
  if (options.count) {
    std::cout << (options.json ? absl::StrCat("{\"count\":", total, "}") : absl::StrCat(total))
              << "\n";
  } else if (!options.json) {
    std::cerr << shown << " of " << total << " sessions shown\n";
  }
  return 0;
}

int RunSessionsPublish(const SessionsPublishOptions& options) {
  const bool from_stdin = options.file.empty() || options.file == "-";
  const std::string name = from_stdin ? "<stdin>" : options.file;
  std::ifstream file;
  if (!from_stdin) {
    file.open(options.file);
    if (!file) {
      std::cerr << "cloudha sessions publish: cannot open " << options.file << "\n";
      return 2;
    }
  }
  absl::StatusOr<PublishInput> input = ReadPublishInput(
      from_stdin ? std::cin : file, name, absl::ToUnixMillis(absl::Now()));
  if (!input.ok()) {
    std::cerr << "cloudha sessions publish: " << input.status().message()
              << "; nothing was sent\n";
    return 2;
  }
  absl::StatusOr<std::string> socket = ResolveAdminSocket(options.target);
  if (!socket.ok()) {
    std::cerr << "cloudha sessions publish: " << socket.status().message() << "\n";
    return 1;
  }
  auto stub = ConnectAdmin(*socket);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::PublishSessionsResponse response;
  auto writer = stub->PublishSessions(&context, &response);
  if (input->messages.empty()) input->messages.emplace_back();
  input->messages.back().set_end(true);
  for (const v1::PublishSessionsRequest& message : input->messages) {
    if (!writer->Write(message)) break;  // Finish says why
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::cerr << "cloudha sessions publish: cannot reach the agent at " << *socket << ": "
                << s.error_message() << "\n";
    } else {
      std::cerr << "cloudha sessions publish: " << s.error_message() << "\n";
    }
    return 1;
  }
  std::cout << "published " << response.accepted() << ", refused " << response.refused() << "\n";
  return 0;
}

}  // namespace cloudha
