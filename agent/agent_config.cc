#include "agent/agent_config.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/node_identity.h"
#include "base/netns.h"
#include "base/secure_file.h"
#include "sync/config_path.h"
#include "crypto/tls_material.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {
namespace {

using ::cloudha::v1::AgentConfig;
using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::TextFormat;

// A step of a field path: a field name and, for repeated fields, an index.
struct FieldStep {
  const char* name;
  int index = -1;
};

// Finds the line of a field in the parsed textproto (0 when unknown, e.g.
// for JSON or for a field that is absent: then the nearest present parent's
// line is the best we can say).
class Locator {
 public:
  explicit Locator(const TextFormat::ParseInfoTree* tree) : tree_(tree) {}

  int Line(std::initializer_list<FieldStep> path) const {
    return Line(std::vector<FieldStep>(path));
  }

  int Line(const std::vector<FieldStep>& path) const {
    if (tree_ == nullptr) return 0;
    const TextFormat::ParseInfoTree* tree = tree_;
    const Descriptor* descriptor = AgentConfig::descriptor();
    int line = 0;
    for (const FieldStep& step : path) {
      const FieldDescriptor* field = descriptor->FindFieldByName(step.name);
      if (field == nullptr || tree == nullptr) break;
      // protobuf aborts on an index that does not fit the field: a repeated
      // field needs one, a singular one must not have one.
      if (field->is_repeated() != (step.index >= 0)) break;
      auto location = tree->GetLocation(field, step.index);
      if (location.line < 0) break;
      line = location.line + 1;
      if (field->type() != FieldDescriptor::TYPE_MESSAGE) break;
      tree = tree->GetTreeForNested(field, step.index);
      descriptor = field->message_type();
    }
    return line;
  }

 private:
  const TextFormat::ParseInfoTree* tree_;
};

class TextErrors : public google::protobuf::io::ErrorCollector {
 public:
  TextErrors(std::string file, std::vector<ConfigProblem>* problems)
      : file_(std::move(file)), problems_(problems) {}
  void AddError(int line, int /*column*/, const std::string& message) override {
    problems_->push_back({file_, line + 1, message});
  }
  void AddWarning(int line, int /*column*/, const std::string& message) override {
    problems_->push_back({file_, line + 1, message});
  }

 private:
  std::string file_;
  std::vector<ConfigProblem>* problems_;
};

std::string Folder(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Absolute(const std::string& path) {
  if (absl::StartsWith(path, "/")) return path;
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

void Resolve(const std::string& folder, std::string* path) {
  if (!path->empty() && !absl::StartsWith(*path, "/")) {
    *path = absl::StrCat(folder, "/", *path);
  }
}

// A command given as a relative path ("hooks/eip.sh") resolves against the
// config folder; a bare name ("ping") is left alone and refused by the checks,
// since no shell or PATH search is involved.
void ResolveCommand(const std::string& folder, std::string* command) {
  if (absl::StrContains(*command, "/")) Resolve(folder, command);
}

// Every semantic check, in file order where possible.
class Checker {
 public:
  Checker(std::string file, const Locator& locator, std::vector<ConfigProblem>* problems)
      : file_(std::move(file)), locator_(locator), problems_(problems) {}

  void Add(std::initializer_list<FieldStep> where, std::string message) {
    problems_->push_back({file_, locator_.Line(where), std::move(message)});
  }

  // Every string field must be UTF-8 (proto3 strings are): a textproto
  // escape such as "\377" parses, and the admin API could not send the
  // status that carries it.
  void CheckUtf8(const google::protobuf::Message& m, std::vector<FieldStep>* path,
                 const std::string& where) {
    const google::protobuf::Reflection* r = m.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(m, &fields);
    for (const FieldDescriptor* f : fields) {
      const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        const int index = f->is_repeated() ? i : -1;
        const std::string name =
            absl::StrCat(where, where.empty() ? "" : ".", f->name(),
                         f->is_repeated() ? absl::StrCat("[", i, "]") : "");
        path->push_back({f->name().c_str(), index});
        if (f->type() == FieldDescriptor::TYPE_STRING) {
          std::string scratch;
          const std::string& value = f->is_repeated()
                                         ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                         : r->GetStringReference(m, f, &scratch);
          if (!google::protobuf::internal::IsStructurallyValidUTF8(value.data(),
                                                                 static_cast<int>(value.size()))) {
            problems_->push_back(
                {file_, locator_.Line(*path), absl::StrCat(name, " is not valid UTF-8")});
          }
        } else if (f->type() == FieldDescriptor::TYPE_MESSAGE) {
          CheckUtf8(f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), path,
                    name);
        }
        path->pop_back();
      }
    }
  }

  void Check(AgentConfig& c, absl::Time now, TlsCheck tls_check) {
    std::vector<FieldStep> path;
    CheckUtf8(c, &path, "");
    if (!c.has_cluster()) {
      Add({}, "cluster { name: \"...\" group_id: N } is required");
    } else {
      if (absl::Status s = ValidateName("cluster.name", c.cluster().name()); !s.ok()) {
        Add({{"cluster"}, {"name"}}, std::string(s.message()));
      }
      if (c.cluster().group_id() > 65535) {
        Add({{"cluster"}, {"group_id"}},
            absl::StrCat("cluster.group_id must be 0..65535, got ", c.cluster().group_id()));
      }
    }
    if (!c.has_node()) {
      Add({}, "node { id: \"...\" } is required");
    } else {
      if (absl::Status s = ValidateName("node.id", c.node().id()); !s.ok()) {
        Add({{"node"}, {"id"}}, std::string(s.message()));
      }
      if (c.node().priority() > 255) {
        Add({{"node"}, {"priority"}},
            absl::StrCat("node.priority must be 0..255, got ", c.node().priority()));
      }
    }
    if (c.listen().empty()) {
      Add({}, "listen: \"HOST:PORT\" is required (the peer listener)");
    } else {
      CheckAddress({{"listen"}}, "listen", c.listen());
    }
    CheckPeers(c);
    CheckHeartbeat(c);
    if (!absl::StartsWith(c.admin().socket(), "/")) {
      Add({{"admin"}, {"socket"}}, "admin.socket must be a path");
    } else if (c.admin().socket().size() > 107) {
      Add({{"admin"}, {"socket"}},
          absl::StrCat("admin.socket is ", c.admin().socket().size(),
                       " characters; a Unix socket path holds at most 107"));
    }
    CheckPlaintextListeners(c);
    CheckElection(c);
    CheckSessions(c);
    CheckMonitors(c);
    CheckHooks(c);
    CheckConfigSync(c);
    CheckArbiter(c, tls_check);
    if (tls_check == TlsCheck::kFull) CheckTls(c, now);
  }

 private:
  // The plaintext listeners (health's and metrics'): each a HOST:PORT of
  // its own, none the peer port (which never accepts plaintext).
  void CheckPlaintextListeners(const AgentConfig& c) {
    struct Listener {
      const char* section;
      const char* field;
      const std::string& address;
      // Port 0 picks a free one (`cloudha status` shows which).
      bool any_port = false;
    };
    const Listener listeners[] = {
        {"health", "listen", c.health().listen()},
        {"health", "http_listen", c.health().http_listen()},
        {"health", "tcp_primary_listen", c.health().tcp_primary_listen()},
        {"metrics", "listen", c.metrics().listen(), /*any_port=*/true}};
    std::map<std::string, std::string> seen = {{c.listen(), "listen"}};
    for (const Listener& l : listeners) {
      if (l.address.empty()) continue;
      std::string what = absl::StrCat(l.section, ".", l.field);
      if (l.any_port) {
        absl::StatusOr<HostPort> hp = SplitHostPort(what, l.address);
        if (!hp.ok()) Add({{l.section}, {l.field}}, std::string(hp.status().message()));
        if (hp.ok() && hp->port == 0) continue;
      } else {
        CheckAddress({{l.section}, {l.field}}, what, l.address);
      }
      auto [it, added] = seen.emplace(l.address, what);
      if (!added) {
        Add({{l.section}, {l.field}},
            absl::StrCat(what, " must differ from ", it->second,
                         it->second == "listen" ? ": the peer port never accepts plaintext"
                                                : ": each listener needs a port of its own"));
      }
    }
  }

  void CheckAddress(std::initializer_list<FieldStep> where, absl::string_view what,
                    const std::string& address) {
    absl::StatusOr<HostPort> hp = ParseHostPort(what, address);
    if (!hp.ok()) Add(where, std::string(hp.status().message()));
  }

  void CheckPeers(const AgentConfig& c) {
    if (c.peers_size() == 0) {
      Add({}, "peers: at least one peer { id: \"...\" addresses: \"HOST:PORT\" } is required");
    }
    if (c.peers_size() > 7) {
      Add({{"peers", 7}}, absl::StrCat("at most 7 peers (8 nodes), got ", c.peers_size()));
    }
    std::set<std::string> ids;
    for (int i = 0; i < c.peers_size(); ++i) {
      const auto& peer = c.peers(i);
      std::string what = absl::StrCat("peers[", i, "]");
      if (absl::Status s = ValidateName(what + ".id", peer.id()); !s.ok()) {
        Add({{"peers", i}, {"id"}}, std::string(s.message()));
      } else if (peer.id() == c.node().id()) {
        Add({{"peers", i}, {"id"}},
            absl::StrCat(what, ".id \"", peer.id(), "\" is this node's own id (node.id)"));
      } else if (!ids.insert(peer.id()).second) {
        Add({{"peers", i}, {"id"}}, absl::StrCat(what, ".id \"", peer.id(), "\" appears twice"));
      }
      if (peer.addresses_size() < 1 || peer.addresses_size() > 4) {
        Add({{"peers", i}},
            absl::StrCat(what, " needs 1 to 4 addresses (heartbeat paths), got ",
                         peer.addresses_size()));
      }
      // (The default is the first address, which is checked below.)
      if (!peer.sync_address().empty() &&
          (peer.addresses_size() == 0 || peer.sync_address() != peer.addresses(0))) {
        CheckAddress({{"peers", i}, {"sync_address"}}, what + ".sync_address",
                     peer.sync_address());
      }
      std::set<std::string> addresses;
      for (int j = 0; j < peer.addresses_size(); ++j) {
        CheckAddress({{"peers", i}, {"addresses", j}},
                     absl::StrCat(what, ".addresses[", j, "]"), peer.addresses(j));
        if (!addresses.insert(peer.addresses(j)).second) {
          Add({{"peers", i}, {"addresses", j}},
              absl::StrCat(what, ".addresses[", j, "] \"", peer.addresses(j),
                           "\" appears twice"));
        }
      }
    }
  }

  void CheckHeartbeat(const AgentConfig& c) {
    uint32_t interval = c.heartbeat().interval_ms();
    if (interval < 10 || interval > 60000) {
      Add({{"heartbeat"}, {"interval_ms"}},
          absl::StrCat("heartbeat.interval_ms must be 10..60000, got ", interval));
    }
    uint32_t threshold = c.heartbeat().lost_threshold();
    if (threshold < 1 || threshold > 60) {
      Add({{"heartbeat"}, {"lost_threshold"}},
          absl::StrCat("heartbeat.lost_threshold must be 1..60, got ", threshold));
    }
  }

  void CheckRange(std::initializer_list<FieldStep> where, const std::string& what, uint32_t value,
                  uint32_t low, uint32_t high) {
    if (value < low || value > high) {
      Add(where, absl::StrCat(what, " must be ", low, "..", high, ", got ", value));
    }
  }

  void CheckArbiter(const AgentConfig& c, TlsCheck tls_check) {
    if (!c.has_arbiter()) return;
    const v1::ArbiterConfig& a = c.arbiter();
    if (a.has_witness() && a.has_etcd()) {
      Add({{"arbiter"}, {"etcd"}}, "arbiter takes one back end, witness or etcd, not both");
    } else if (a.has_etcd()) {
      CheckEtcd(a.etcd(), tls_check);
    } else if (!a.has_witness()) {
      Add({{"arbiter"}},
          "arbiter needs a back end: witness { addresses: \"HOST:PORT\" } or "
          "etcd { endpoints: \"HOST:PORT\" tls { ca_file: \"...\" } }");
    } else {
      const auto& w = a.witness();
      if (w.addresses_size() < 1 || w.addresses_size() > 4) {
        Add({{"arbiter"}, {"witness"}},
            absl::StrCat("arbiter.witness needs 1 to 4 addresses, got ", w.addresses_size()));
      }
      for (int j = 0; j < w.addresses_size(); ++j) {
        CheckAddress({{"arbiter"}, {"witness"}, {"addresses", j}},
                     absl::StrCat("arbiter.witness.addresses[", j, "]"), w.addresses(j));
      }
      if (absl::Status s = ValidateName("arbiter.witness.id", w.id()); !s.ok()) {
        Add({{"arbiter"}, {"witness"}, {"id"}}, std::string(s.message()));
      } else if (w.id() == c.node().id()) {
        Add({{"arbiter"}, {"witness"}, {"id"}},
            absl::StrCat("arbiter.witness.id \"", w.id(), "\" is this node's own id"));
      } else {
        for (const auto& peer : c.peers()) {
          if (peer.id() == w.id()) {
            Add({{"arbiter"}, {"witness"}, {"id"}},
                absl::StrCat("arbiter.witness.id \"", w.id(),
                             "\" is a peer's id: the witness needs a certificate of its own"));
          }
        }
      }
    }
    const uint32_t ttl = a.lease_ttl_ms();
    const uint32_t interval = c.heartbeat().interval_ms();
    if (ttl < 300 || ttl > 600000) {
      Add({{"arbiter"}, {"lease_ttl_ms"}},
          absl::StrCat("arbiter.lease_ttl_ms must be 300..600000, got ", ttl));
    } else if (uint64_t{ttl} < 3ull * interval) {
      Add({{"arbiter"}, {"lease_ttl_ms"}},
          absl::StrCat("arbiter.lease_ttl_ms (", ttl,
                       ") must be at least 3 heartbeat intervals (3 x ", interval,
                       " ms): the primary renews it several times per lease"));
    } else if (a.has_etcd() && (ttl % 1000 != 0 || ttl < 2000)) {
      Add({{"arbiter"}, {"lease_ttl_ms"}},
          absl::StrCat("arbiter.lease_ttl_ms must be whole seconds of at least 2000 with etcd, "
                       "got ", ttl,
                       ": etcd counts leases in seconds, and makes a shorter one 2 s with "
                       "its default timing"));
    }
    if (c.heartbeat().lost_threshold() < 4) {
      Add({{"heartbeat"}, {"lost_threshold"}},
          absl::StrCat("heartbeat.lost_threshold must be at least 4 with an arbiter, got ",
                       c.heartbeat().lost_threshold(),
                       ": a primary without the lease counts a peer's vote only while its "
                       "hellos are at most lost_threshold - 2 intervals old"));
    }
    CheckRange({{"arbiter"}, {"max_clock_drift_ppm"}}, "arbiter.max_clock_drift_ppm",
               a.max_clock_drift_ppm(), 0, 100000);
  }

  void CheckEtcd(const v1::EtcdArbiterConfig& e, TlsCheck tls_check) {
    if (e.endpoints_size() < 1 || e.endpoints_size() > 5) {
      Add({{"arbiter"}, {"etcd"}},
          absl::StrCat("arbiter.etcd needs 1 to 5 endpoints, got ", e.endpoints_size()));
    }
    for (int j = 0; j < e.endpoints_size(); ++j) {
      CheckAddress({{"arbiter"}, {"etcd"}, {"endpoints", j}},
                   absl::StrCat("arbiter.etcd.endpoints[", j, "]"), e.endpoints(j));
    }
    const v1::TlsConfig& tls = e.tls();
    if (e.plaintext()) {
      if (e.has_tls() || !e.server_name().empty()) {
        Add({{"arbiter"}, {"etcd"}, {"plaintext"}},
            "arbiter.etcd.plaintext excludes tls and server_name: choose one");
      }
    } else if (tls.ca_file().empty()) {
      Add({{"arbiter"}, {"etcd"}},
          "arbiter.etcd needs tls { ca_file: \"...\" } (the CA of etcd's certificate), or "
          "plaintext: true to speak to etcd without TLS on a network nobody else reaches");
    } else {
      if (tls.cert_file().empty() != tls.key_file().empty()) {
        Add({{"arbiter"}, {"etcd"}, {"tls"}},
            "arbiter.etcd.tls takes cert_file and key_file together (a client certificate), "
            "or neither");
      }
      if (tls_check == TlsCheck::kFull) {
        for (const auto& [name, value, marker] :
             {std::tuple<const char*, const std::string&, const char*>{
                  "ca_file", tls.ca_file(), "-----BEGIN CERTIFICATE-----"},
              {"cert_file", tls.cert_file(), "-----BEGIN CERTIFICATE-----"},
              {"key_file", tls.key_file(), "PRIVATE KEY-----"}}) {
          if (value.empty()) continue;
          absl::StatusOr<std::string> pem = ReadSmallFile(value);
          if (!pem.ok()) {
            Add({{"arbiter"}, {"etcd"}, {"tls"}, {name}},
                absl::StrCat("arbiter.etcd.tls.", name, ": ", pem.status().message()));
          } else if (!absl::StrContains(*pem, marker)) {
            Add({{"arbiter"}, {"etcd"}, {"tls"}, {name}},
                absl::StrCat("arbiter.etcd.tls.", name, ": ", value, " holds no PEM \"", marker,
                             "\""));
          }
        }
      }
    }
    if (!e.server_name().empty() &&
        !absl::c_all_of(e.server_name(), [](char ch) {
          return absl::ascii_isalnum(ch) || ch == '.' || ch == '-';
        })) {
      Add({{"arbiter"}, {"etcd"}, {"server_name"}},
          absl::StrCat("arbiter.etcd.server_name \"", e.server_name(),
                       "\" is not a host name (letters, digits, '.' and '-')"));
    }
    const std::string& prefix = e.prefix();
    if (prefix.empty()) return;  // the back end's default, "/cloudha"
    if (!absl::StartsWith(prefix, "/") || (prefix.size() > 1 && absl::EndsWith(prefix, "/")) ||
        prefix == "/" ||
        !absl::c_all_of(prefix, [](char ch) { return absl::ascii_isgraph(ch); })) {
      Add({{"arbiter"}, {"etcd"}, {"prefix"}},
          absl::StrCat("arbiter.etcd.prefix \"", prefix,
                       "\" must start with '/', not end with '/', and hold no spaces "
                       "(e.g. \"/cloudha\")"));
    }
  }

  void CheckElection(const AgentConfig& c) {
    const auto& e = c.election();
    CheckRange({{"election"}, {"uptime_margin_s"}}, "election.uptime_margin_s",
               e.uptime_margin_s(), 0, 86400);
    CheckRange({{"election"}, {"hello_holddown_s"}}, "election.hello_holddown_s",
               e.hello_holddown_s(), 0, 600);
    CheckRange({{"election"}, {"override_wait_s"}}, "election.override_wait_s",
               e.override_wait_s(), 0, 3600);
    CheckRange({{"election"}, {"failover_hold_s"}}, "election.failover_hold_s",
               e.failover_hold_s(), 0, 3600);
  }

  void CheckSessions(const AgentConfig& c) {
    const auto& s = c.sessions();
    if (s.pickup() && s.source() == v1::SessionsConfig::SOURCE_UNSPECIFIED) {
      Add({{"sessions"}, {"pickup"}},
          "sessions.source must be CONNTRACK or PUBLISHER when sessions.pickup is on");
    }
    CheckRange({{"sessions"}, {"pickup_delay_s"}}, "sessions.pickup_delay_s",
               s.pickup_delay_s(), 0, 3600);
    CheckRange({{"sessions"}, {"max_sessions"}}, "sessions.max_sessions", s.max_sessions(), 1,
               100000000);
    for (int i = 0; i < s.zones_size(); ++i) {
      CheckRange({{"sessions"}, {"zones", i}}, absl::StrCat("sessions.zones[", i, "]"),
                 s.zones(i), 0, 65535);
    }
    if (s.commit() == v1::SessionsConfig::CONTINUOUS &&
        s.source() != v1::SessionsConfig::CONNTRACK) {
      Add({{"sessions"}, {"commit"}},
          "sessions.commit CONTINUOUS writes into the kernel's conntrack table: it needs "
          "sessions.source CONNTRACK (a publisher's data plane receives the sessions on "
          "promotion)");
    }
    CheckSessionsNetns(s);
  }

  // The data plane's network namespace: a name of /run/netns that exists
  // (checked here so that a missing one stops the agent at start, named).
  void CheckSessionsNetns(const v1::SessionsConfig& s) {
    if (s.netns().empty()) return;
    if (s.source() != v1::SessionsConfig::CONNTRACK) {
      Add({{"sessions"}, {"netns"}},
          "sessions.netns needs sessions.source CONNTRACK (it names the namespace whose "
          "conntrack table is the source)");
      return;
    }
    if (absl::Status v = ValidateNetworkNamespaceName(s.netns()); !v.ok()) {
      Add({{"sessions"}, {"netns"}}, absl::StrCat("sessions.netns: ", v.message()));
      return;
    }
    std::string path = NetworkNamespacePath(s.netns());
    if (access(path.c_str(), F_OK) != 0) {
      const int error = errno;
      Add({{"sessions"}, {"netns"}},
          absl::StrCat("sessions.netns ", s.netns(), ": ", path,
                       error == ENOENT
                           ? absl::StrCat(" does not exist (ip netns add ", s.netns(), ")")
                           : absl::StrCat(": ", strerror(error))));
    }
  }

  void CheckConfigSync(const AgentConfig& c) {
    const auto& cs = c.config_sync();
    std::set<std::string> seen;
    for (int i = 0; i < cs.exclude_size(); ++i) {
      std::string what = absl::StrCat("config_sync.exclude[", i, "]");
      if (absl::Status s = ValidateConfigPattern(cs.exclude(i)); !s.ok()) {
        Add({{"config_sync"}, {"exclude", i}}, absl::StrCat(what, ": ", s.message()));
      } else if (!seen.insert(cs.exclude(i)).second) {
        Add({{"config_sync"}, {"exclude", i}},
            absl::StrCat(what, " \"", cs.exclude(i), "\" appears twice"));
      }
    }
    for (int i = 0; i < cs.on_change_size(); ++i) {
      const auto& h = cs.on_change(i);
      std::string what = absl::StrCat("config_sync.on_change[", i, "]");
      CheckExecutable({{"config_sync"}, {"on_change", i}, {"command"}}, what + ".command",
                      h.command());
      CheckRange({{"config_sync"}, {"on_change", i}, {"timeout_ms"}}, what + ".timeout_ms",
                 h.timeout_ms(), 100, 3600000);
    }
  }

  // An executable named by a monitor or hook must exist and be executable.
  void CheckExecutable(std::initializer_list<FieldStep> where, const std::string& what,
                       const google::protobuf::RepeatedPtrField<std::string>& command) {
    if (command.empty()) {
      Add(where, absl::StrCat(what, " is empty; name an executable"));
      return;
    }
    if (!absl::StartsWith(command[0], "/")) {
      Add(where, absl::StrCat(what, "[0] \"", command[0],
                              "\" must be a path (e.g. /usr/bin/", command[0], " or ./",
                              command[0], ")"));
    } else if (access(command[0].c_str(), X_OK) != 0) {
      Add(where, absl::StrCat(what, "[0] ", command[0], " is not an executable file: ",
                              strerror(errno)));
    }
  }

  void CheckMonitors(const AgentConfig& c) {
    std::set<std::string> names;
    for (int i = 0; i < c.monitors_size(); ++i) {
      const auto& m = c.monitors(i);
      std::string what = absl::StrCat("monitors[", i, "]");
      if (m.name().empty()) {
        Add({{"monitors", i}}, absl::StrCat(what, ".name is required"));
      } else if (!names.insert(m.name()).second) {
        Add({{"monitors", i}, {"name"}},
            absl::StrCat(what, ".name \"", m.name(), "\" appears twice"));
      }
      switch (m.check_case()) {
        case v1::MonitorConfig::kExec:
          CheckExecutable({{"monitors", i}, {"exec"}}, what + ".exec.command",
                          m.exec().command());
          break;
        case v1::MonitorConfig::kTcp:
          CheckAddress({{"monitors", i}, {"tcp"}}, what + ".tcp.address", m.tcp().address());
          break;
        case v1::MonitorConfig::kInterface:
          if (m.interface().name().empty() || absl::StrContains(m.interface().name(), "/")) {
            Add({{"monitors", i}, {"interface"}},
                absl::StrCat(what, ".interface.name must name a network interface"));
          }
          break;
        default:
          Add({{"monitors", i}}, absl::StrCat(what, " needs one check: exec, tcp or interface"));
      }
      CheckRange({{"monitors", i}, {"interval_ms"}}, what + ".interval_ms", m.interval_ms(), 100,
                 600000);
      CheckRange({{"monitors", i}, {"timeout_ms"}}, what + ".timeout_ms", m.timeout_ms(), 10,
                 600000);
      CheckRange({{"monitors", i}, {"rise"}}, what + ".rise", m.rise(), 1, 100);
      CheckRange({{"monitors", i}, {"fall"}}, what + ".fall", m.fall(), 1, 100);
      CheckRange({{"monitors", i}, {"weight"}}, what + ".weight", m.weight(), 1, 1000);
    }
  }

  void CheckHooks(const AgentConfig& c) {
    for (int i = 0; i < c.hooks_size(); ++i) {
      const auto& h = c.hooks(i);
      std::string what = absl::StrCat("hooks[", i, "]");
      if (h.on() == v1::HookConfig::EVENT_UNSPECIFIED) {
        Add({{"hooks", i}}, absl::StrCat(what, ".on is required: TO_PRIMARY, TO_SECONDARY, "
                                               "TO_FAULT, PEER_LOST or PEER_FOUND"));
      }
      CheckExecutable({{"hooks", i}, {"command"}}, what + ".command", h.command());
      CheckRange({{"hooks", i}, {"timeout_ms"}}, what + ".timeout_ms", h.timeout_ms(), 100,
                 3600000);
      CheckRange({{"hooks", i}, {"retries"}}, what + ".retries", h.retries(), 0, 10);
      CheckRange({{"hooks", i}, {"backoff_ms"}}, what + ".backoff_ms", h.backoff_ms(), 10, 600000);
      if (h.recheck_s() != 0) {
        if (h.on() != v1::HookConfig::TO_PRIMARY) {
          Add({{"hooks", i}, {"recheck_s"}},
              absl::StrCat(what, ".recheck_s is for TO_PRIMARY hooks only"));
        } else {
          CheckRange({{"hooks", i}, {"recheck_s"}}, what + ".recheck_s", h.recheck_s(), 5, 86400);
        }
      }
    }
  }

  void CheckTls(const AgentConfig& c, absl::Time now) {
    const auto& tls = c.tls();
    bool complete = true;
    for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"ca_file", tls.ca_file()},
                                      {"cert_file", tls.cert_file()},
                                      {"key_file", tls.key_file()}}) {
      if (value.empty()) {
        Add({{"tls"}}, absl::StrCat("tls.", name, " is required"));
        complete = false;
      }
    }
    if (!complete) return;
    // Without a valid cluster name and node id there is nothing to compare
    // the certificate with; those fields already have their own errors.
    bool names_valid = ValidateName("", c.cluster().name()).ok() &&
                       ValidateName("", c.node().id()).ok();
    absl::StatusOr<TlsMaterial> material =
        LoadTlsMaterial({tls.ca_file(), tls.cert_file(), tls.key_file()}, now);
    if (!material.ok()) {
      absl::string_view message = material.status().message();
      const char* field = absl::StartsWith(message, tls.ca_file())     ? "ca_file"
                          : absl::StartsWith(message, tls.key_file()) ? "key_file"
                                                                      : "cert_file";
      Add({{"tls"}, {field}}, absl::StrCat("tls.", field, ": ", message));
      return;
    }
    NodeIdentity want{c.cluster().name(), c.node().id()};
    if (names_valid && material->identity != want) {
      Add({{"tls"}, {"cert_file"}},
          absl::StrCat("tls.cert_file: ", tls.cert_file(), " is for node \"",
                       material->identity.node, "\" of cluster \"", material->identity.cluster,
                       "\", but this is node \"", want.node, "\" of cluster \"", want.cluster,
                       "\""));
    }
  }

  std::string file_;
  const Locator& locator_;
  std::vector<ConfigProblem>* problems_;
};

void FillDefaults(const std::string& folder, AgentConfig* c) {
  if (!c->node().has_priority()) c->mutable_node()->set_priority(kDefaultPriority);
  if (!c->heartbeat().has_interval_ms()) c->mutable_heartbeat()->set_interval_ms(kDefaultIntervalMs);
  if (!c->heartbeat().has_lost_threshold()) {
    c->mutable_heartbeat()->set_lost_threshold(kDefaultLostThreshold);
  }
  if (c->admin().socket().empty()) c->mutable_admin()->set_socket(kDefaultAdminSocket);
  if (c->state_dir().empty()) c->set_state_dir(kDefaultStateDir);
  if (c->log().format() == v1::LogConfig::FORMAT_UNSPECIFIED) {
    c->mutable_log()->set_format(v1::LogConfig::TEXT);
  }
  if (c->log().level() == v1::LogConfig::LEVEL_UNSPECIFIED) {
    c->mutable_log()->set_level(v1::LogConfig::INFO);
  }
  auto* e = c->mutable_election();
  if (!e->has_uptime_margin_s()) e->set_uptime_margin_s(kDefaultUptimeMarginS);
  if (!e->has_hello_holddown_s()) e->set_hello_holddown_s(kDefaultHelloHolddownS);
  if (!e->has_override_wait_s()) e->set_override_wait_s(kDefaultOverrideWaitS);
  if (!e->has_failover_hold_s()) e->set_failover_hold_s(kDefaultFailoverHoldS);
  for (auto& m : *c->mutable_monitors()) {
    if (!m.has_interval_ms()) m.set_interval_ms(1000);
    if (!m.has_timeout_ms()) m.set_timeout_ms(1000);
    if (!m.has_rise()) m.set_rise(2);
    if (!m.has_fall()) m.set_fall(3);
    if (!m.has_weight()) m.set_weight(10);
    if (m.has_exec() && m.exec().command_size() > 0) {
      ResolveCommand(folder, m.mutable_exec()->mutable_command(0));
    }
  }
  auto* sessions = c->mutable_sessions();
  if (!sessions->has_pickup_delay_s()) sessions->set_pickup_delay_s(0);
  if (!sessions->has_max_sessions()) sessions->set_max_sessions(kDefaultMaxSessions);
  for (auto& peer : *c->mutable_peers()) {
    if (peer.sync_address().empty() && peer.addresses_size() > 0) {
      peer.set_sync_address(peer.addresses(0));
    }
  }
  for (auto& h : *c->mutable_config_sync()->mutable_on_change()) {
    if (!h.has_timeout_ms()) h.set_timeout_ms(30000);
    if (h.command_size() > 0) ResolveCommand(folder, h.mutable_command(0));
  }
  if (c->config_sync().store_file().empty()) {
    c->mutable_config_sync()->set_store_file(absl::StrCat(c->state_dir(), "/config.db"));
  }
  for (auto& h : *c->mutable_hooks()) {
    if (!h.has_timeout_ms()) h.set_timeout_ms(30000);
    if (!h.has_retries()) h.set_retries(2);
    if (!h.has_backoff_ms()) h.set_backoff_ms(500);
    if (h.command_size() > 0) ResolveCommand(folder, h.mutable_command(0));
  }
  if (c->has_arbiter()) {
    auto* a = c->mutable_arbiter();
    if (!a->has_lease_ttl_ms()) a->set_lease_ttl_ms(2000);
    if (!a->has_max_clock_drift_ppm()) a->set_max_clock_drift_ppm(500);
    if (a->has_witness() && a->witness().id().empty()) a->mutable_witness()->set_id("witness");
    if (a->has_etcd()) {
      auto* e = a->mutable_etcd();
      if (e->has_tls()) {
        Resolve(folder, e->mutable_tls()->mutable_ca_file());
        Resolve(folder, e->mutable_tls()->mutable_cert_file());
        Resolve(folder, e->mutable_tls()->mutable_key_file());
      }
    }
  }
  Resolve(folder, c->mutable_tls()->mutable_ca_file());
  Resolve(folder, c->mutable_tls()->mutable_cert_file());
  Resolve(folder, c->mutable_tls()->mutable_key_file());
  Resolve(folder, c->mutable_admin()->mutable_socket());
  Resolve(folder, c->mutable_state_dir());
  Resolve(folder, c->mutable_config_sync()->mutable_store_file());
}

}  // namespace

std::string ConfigProblem::ToString() const {
  return absl::StrCat(file, ":", line, ": ", message);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view what, absl::string_view address) {
  absl::StatusOr<HostPort> result = SplitHostPort(what, address);
  if (result.ok() && result->port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", address, "\" has a port outside 1..65535 (want HOST:PORT or [IPV6]:PORT)"));
  }
  return result;
}

LoadedConfig ParseAgentConfig(const std::string& path, const std::string& text,
                              absl::Time now, TlsCheck tls_check) {
  LoadedConfig loaded;
  std::vector<ConfigProblem>& problems = loaded.problems;
  TextFormat::ParseInfoTree tree;
  const TextFormat::ParseInfoTree* locations = nullptr;
  if (absl::EndsWith(path, ".json")) {
    google::protobuf::util::JsonParseOptions options;
    auto status = google::protobuf::util::JsonStringToMessage(text, &loaded.config, options);
    if (!status.ok()) {
      problems.push_back({path, 0, absl::StrCat("not a valid JSON AgentConfig: ",
                                                std::string(status.message()))});
      return loaded;
    }
  } else if (absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".txtpb")) {
    TextFormat::Parser parser;
    TextErrors errors(path, &problems);
    parser.RecordErrorsTo(&errors);
    parser.WriteLocationsTo(&tree);
    if (!parser.ParseFromString(text, &loaded.config)) {
      if (problems.empty()) problems.push_back({path, 0, "not a valid textproto AgentConfig"});
      return loaded;
    }
    locations = &tree;
  } else {
    problems.push_back(
        {path, 0, "unknown format: the file name must end in .textproto, .txtpb or .json"});
    return loaded;
  }
  FillDefaults(Folder(Absolute(path)), &loaded.config);
  Locator locator(locations);
  Checker(path, locator, &problems).Check(loaded.config, now, tls_check);
  return loaded;
}

LoadedConfig LoadAgentConfig(const std::string& path, absl::Time now, TlsCheck tls_check) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) {
    LoadedConfig loaded;
    loaded.problems.push_back({path, 0, std::string(text.status().message())});
    return loaded;
  }
  return ParseAgentConfig(path, *text, now, tls_check);
}

}  // namespace cloudha
