#include "agent/cli/status_command.h"

#include <chrono>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cloudha/v1/peer.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {
namespace {

std::string Age(int64_t ms) {
  if (ms < 0) return "never";
  return absl::StrCat(absl::FormatDuration(absl::Milliseconds(ms)), " ago");
}

std::string Ms(double ms) { return absl::StrFormat("%.2fms", ms); }

std::string Date(int64_t unix_s) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::FromUnixSeconds(unix_s),
                          absl::UTCTimeZone());
}

// The certificate and CAs in use, their expiry and the warnings in force.
std::string FormatTls(const v1::TlsStatus& t) {
  std::string issuer;
  std::vector<std::string> cas;
  for (const v1::TrustedCaStatus& ca : t.cas()) {
    if (ca.issued_this_node()) issuer = ca.fingerprint();
    cas.push_back(absl::StrFormat("%s \"%s\" until %s", ca.fingerprint(), ca.name(),
                                  Date(ca.not_after_s())));
  }
  std::string out = absl::StrFormat(
      "tls certificate %s expires %s, issued by %s%s\n", t.certificate_fingerprint(),
      Date(t.certificate_not_after_s()), issuer,
      t.reloads() == 0
          ? ""
          : absl::StrFormat("  (reloaded %d time%s, last %s)", t.reloads(),
                            t.reloads() == 1 ? "" : "s",
                            absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                                             absl::FromUnixMillis(t.last_reload_ms()),
                                             absl::UTCTimeZone())));
  absl::StrAppendFormat(&out, "tls trusts %d CA%s: %s\n", t.cas_size(),
                        t.cas_size() == 1 ? "" : "s", absl::StrJoin(cas, "; "));
  for (const std::string& warning : t.warnings()) {
    absl::StrAppendFormat(&out, "WARNING: %s\n", warning);
  }
  if (!t.last_error().empty()) {
    absl::StrAppendFormat(&out, "tls: the files were refused, the material in use stays: %s\n",
                          t.last_error());
  }
  return out;
}

}  // namespace

std::string FormatStatus(const v1::StatusResponse& s) {
  std::string out = absl::StrFormat(
      "node %s  cluster %s (group %d)  up %s  priority %d  listen %s\n", s.node_id(),
      s.cluster(), s.group_id(), absl::FormatDuration(absl::Seconds(s.uptime_ms() / 1000)),
      s.priority(), s.listen());
  if (!s.version().empty()) absl::StrAppendFormat(&out, "version %s\n", s.version());
  if (s.role() != v1::ROLE_UNSPECIFIED) {
    absl::StrAppendFormat(&out, "role %s  epoch %d  for %s: %s\n", v1::Role_Name(s.role()),
                          s.epoch(), absl::FormatDuration(absl::Seconds(s.role_age_ms() / 1000)),
                          s.role_reason());
    absl::StrAppendFormat(
        &out, "primary %s%s  health %s%s\n", s.primary().empty() ? "(none)" : s.primary(),
        s.selected_by().empty() ? "" : absl::StrCat(" (selected by: ", s.selected_by(), ")"),
        s.health_penalty() == 0 ? "ok" : absl::StrCat("penalty ", s.health_penalty()),
        s.role() == v1::PRIMARY ? (s.primary_ready() ? "  ready" : "  hooks running") : "");
  }
  absl::StrAppendFormat(&out, "heartbeat every %dms, peer lost after %d missed\n",
                        s.heartbeat_interval_ms(), s.lost_threshold());
  if (!s.metrics_listen().empty()) {
    absl::StrAppendFormat(&out, "metrics http://%s/metrics\n", s.metrics_listen());
  }
  if (s.has_tls()) out += FormatTls(s.tls());
  if (s.has_config()) {
    const v1::ConfigSyncStatus& c = s.config();
    absl::StrAppendFormat(&out, "sync %s  config rev %d  %d entries  checksum %s  %s\n",
                          v1::SyncState_Name(s.sync_state()), c.revision(), c.entries(),
                          c.root_checksum().substr(0, 16),
                          c.replica_of().empty()
                              ? (c.in_sync() ? "in sync" : "syncing")
                              : absl::StrFormat("%s %s (last resync %d entries in %.1fms)",
                                                c.in_sync() ? "in sync with" : "syncing from",
                                                c.replica_of(), c.last_resync_entries(),
                                                c.last_resync_ms()));
    absl::StrAppendFormat(&out, "config exclude: %s%s\n",
                          c.exclude().empty() ? "(none)" : absl::StrJoin(c.exclude(), ", "),
                          c.last_error().empty() ? "" : absl::StrCat("  error: ", c.last_error()));
  }
  if (s.has_sessions() && !s.sessions().source().empty()) {
    const v1::SessionSyncStatus& ss = s.sessions();
    absl::StrAppendFormat(&out, "sessions %s  %d in table  position %d%s\n", ss.source(),
                          ss.table_size(), ss.position(),
                          ss.replica_of().empty() ? "" : absl::StrCat("  replica of ", ss.replica_of()));
  }
  if (s.has_arbiter()) {
    const v1::ArbiterStatus& a = s.arbiter();
    absl::StrAppendFormat(
        &out, "arbiter %s %s  %s  lease %s  holder %s  fence %d  ttl %dms  on isolation %s%s\n",
        a.backend(), a.address(), a.reachable() ? "reachable" : "UNREACHABLE",
        a.lease_held() ? absl::StrCat("held (", a.lease_remaining_ms(), "ms left)")
                       : (a.wanted() ? "wanted" : "not held"),
        a.holder().empty() ? "(none)" : a.holder(), a.fence(), a.lease_ttl_ms(),
        a.on_isolation(), a.last_error().empty() ? "" : absl::StrCat("  error: ", a.last_error()));
  }
  for (const v1::MonitorStatus& m : s.monitors()) {
    absl::StrAppendFormat(&out, "monitor %-16s %-9s %-7s weight %-4d %s\n", m.name(), m.kind(),
                          m.passing() ? "passing" : "FAILING", m.weight(), m.last_result());
  }
  absl::StrAppendFormat(&out, "\n%-12s %-5s %-9s %-6s %-14s %-9s %9s %9s %8s\n", "PEER", "STATE",
                        "ROLE", "EPOCH", "LAST HELLO", "RTT", "SENT", "RECEIVED", "RESTARTS");
  for (const v1::PeerStatus& p : s.peers()) {
    absl::StrAppendFormat(&out, "%-12s %-5s %-9s %-6d %-14s %-9s %9d %9d %8d\n", p.id(),
                          v1::PeerStatus::State_Name(p.state()),
                          p.role() == v1::ROLE_UNSPECIFIED ? "-" : v1::Role_Name(p.role()),
                          p.epoch(), Age(p.last_hello_age_ms()), Ms(p.rtt_ms()), p.hellos_sent(),
                          p.hellos_received(), p.restarts());
    if (!p.version().empty() && p.version() != s.version()) {
      absl::StrAppendFormat(&out, "  runs version %s (this node: %s)\n", p.version(), s.version());
    }
    for (int i = 0; i < p.paths_size(); ++i) {
      const v1::PathStatus& path = p.paths(i);
      absl::StrAppendFormat(&out, "  path %d %-24s %-5s rtt %s (last %s)  loss %.1f%%  sent %d\n",
                            i, path.address(), v1::PeerStatus::State_Name(path.state()),
                            Ms(path.rtt_ms()), Ms(path.last_rtt_ms()), path.loss_pct(),
                            path.hellos_sent());
      if (!path.last_error().empty() && path.state() != v1::PeerStatus::UP) {
        absl::StrAppendFormat(&out, "    error: %s\n", path.last_error());
      }
    }
    if (p.has_config()) {
      const v1::PeerConfigStatus& c = p.config();
      absl::StrAppendFormat(
          &out, "  config rev %d  checksum %s%s%s\n", c.revision(),
          !c.compared() ? "comparing" : c.checksum_match() ? "matches" : "DIFFERS",
          c.stream().empty() ? "" : absl::StrCat("  ", c.stream()),
          c.effective_exclude().empty()
              ? ""
              : absl::StrCat("  effective exclude: ", absl::StrJoin(c.effective_exclude(), ", ")));
    }
    if (!p.last_error().empty()) absl::StrAppendFormat(&out, "  refused: %s\n", p.last_error());
  }
  return out;
}

int RunStatus(const AdminTarget& target, bool json) {
  absl::StatusOr<std::string> socket = ResolveAdminSocket(target);
  if (!socket.ok()) {
    std::cerr << "cloudha status: " << socket.status().message() << "\n";
    return 1;
  }
  auto stub = ConnectAdmin(*socket);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::StatusResponse status;
  grpc::Status rpc = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  if (!rpc.ok()) {
    std::cerr << "cloudha status: cannot reach the agent at " << *socket << ": "
              << rpc.error_message() << " (is `cloudha agent` running? is --socket right?)\n";
    return 1;
  }
  if (json) {
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    options.always_print_primitive_fields = true;
    options.always_print_enums_as_ints = false;
    std::string text;
    if (!google::protobuf::util::MessageToJsonString(status, &text, options).ok()) {
      std::cerr << "cloudha status: cannot print JSON\n";
      return 1;
    }
    std::cout << text << "\n";
  } else {
    std::cout << FormatStatus(status);
  }
  return 0;
}

}  // namespace cloudha
