#include "agent/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/build_info.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"

namespace cloudha {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Hello round trips: from loopback (tens of microseconds) to across regions.
const prometheus::Histogram::BucketBoundaries& RttBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  return *buckets;
}

// Hooks: a cloud API call takes seconds; timeouts are up to minutes.
const prometheus::Histogram::BucketBoundaries& HookBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return *buckets;
}

std::string RoleLabel(v1::Role role) {
  return role == v1::ROLE_UNSPECIFIED ? "unknown" : absl::AsciiStrToLower(v1::Role_Name(role));
}

constexpr v1::Role kRoles[] = {v1::STARTING, v1::SECONDARY, v1::PRIMARY, v1::FAULT};

// Every cause of a role change (RoleChange::cause) with the role it leads to.
constexpr std::pair<const char*, v1::Role> kRoleCauses[] = {
    {"elected", v1::PRIMARY},
    {"peer_lost", v1::PRIMARY},
    {"alone", v1::PRIMARY},
    {"handover", v1::PRIMARY},
    {"reassert", v1::PRIMARY},
    {"operator", v1::SECONDARY},
    {"health", v1::SECONDARY},
    {"override", v1::SECONDARY},
    {"isolated", v1::SECONDARY},
    {"other_primary", v1::SECONDARY},
    {"primary_up", v1::SECONDARY},
    {"outranked", v1::SECONDARY},
    {"monitors_recovered", v1::SECONDARY},
    {"fault_hold_down_over", v1::SECONDARY},
    {"monitors_failing", v1::FAULT},
    {"promotion_failed", v1::FAULT},
};

// RefusalReason's words, and the other side's refusal.
constexpr const char* kRefusalReasons[] = {"wrong_cluster", "wrong_group",    "wrong_node",
                                           "bad_certificate", "bad_hello", "refused_by_peer"};

constexpr const char* kHookResults[] = {"ok", "failed", "timeout"};

// Why config writes are refused most: on a secondary, a bad path or value,
// replicas that did not confirm, a store that could not commit.
constexpr absl::StatusCode kWriteRefusals[] = {
    absl::StatusCode::kFailedPrecondition, absl::StatusCode::kInvalidArgument,
    absl::StatusCode::kNotFound, absl::StatusCode::kUnavailable,
    absl::StatusCode::kResourceExhausted};

std::string StatusCodeLabel(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

// Builds the families of a status in the order they are added.
class FamilyBuilder {
 public:
  explicit FamilyBuilder(const std::string& cluster) : cluster_(cluster) {}

  // Starts a family; the following Add calls go into it.
  void Family(const std::string& name, MetricType type, const std::string& help) {
    families_.push_back(MetricFamily{name, help, type, {}});
  }

  void Add(double value, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric metric;
    metric.label.push_back({"cluster", cluster_});
    for (auto& l : labels) metric.label.push_back(std::move(l));
    if (families_.back().type == MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    families_.back().metric.push_back(std::move(metric));
  }

  // A gauge family with one series.
  void Gauge(const std::string& name, const std::string& help, double value) {
    Family(name, MetricType::Gauge, help);
    Add(value);
  }

  void Counter(const std::string& name, const std::string& help, double value) {
    Family(name, MetricType::Counter, help);
    Add(value);
  }

  std::vector<MetricFamily> Take() {
    // A family without series says nothing; the format wants none.
    families_.erase(std::remove_if(families_.begin(), families_.end(),
                                   [](const MetricFamily& f) { return f.metric.empty(); }),
                    families_.end());
    return std::move(families_);
  }

 private:
  const std::string& cluster_;
  std::vector<MetricFamily> families_;
};

double Seconds(double ms) { return ms / 1000.0; }

void AddRole(const v1::StatusResponse& s, FamilyBuilder* b) {
  b->Family("cloudha_role", MetricType::Gauge,
            "This node's role: 1 on the series of its role, 0 on the others.");
  for (v1::Role role : kRoles) b->Add(s.role() == role ? 1 : 0, {{"role", RoleLabel(role)}});
  b->Gauge("cloudha_epoch", "The epoch this node knows (of the primary it follows, or its own).",
           static_cast<double>(s.epoch()));
  b->Gauge("cloudha_role_age_seconds", "Seconds since this node's last role change.",
           Seconds(static_cast<double>(s.role_age_ms())));
  b->Gauge("cloudha_primary_ready",
           "1 when this node is primary and its TO_PRIMARY hooks succeeded (it serves "
           "cloudha.v1.Primary).",
           s.primary_ready() ? 1 : 0);
  b->Gauge("cloudha_health_penalty", "The sum of the weights of this node's failing monitors.",
           s.health_penalty());
}

void AddPeers(const v1::StatusResponse& s, FamilyBuilder* b) {
  b->Family("cloudha_peer_up", MetricType::Gauge,
            "1 when a hello from the peer arrived within interval_ms * lost_threshold.");
  for (const v1::PeerStatus& p : s.peers()) b->Add(p.state() == v1::PeerStatus::UP, {{"peer", p.id()}});
  b->Family("cloudha_peer_last_hello_age_seconds", MetricType::Gauge,
            "Seconds since the last hello from the peer on any path (absent before the first).");
  for (const v1::PeerStatus& p : s.peers()) {
    if (p.last_hello_age_ms() >= 0) {
      b->Add(Seconds(static_cast<double>(p.last_hello_age_ms())), {{"peer", p.id()}});
    }
  }
  b->Family("cloudha_peer_role", MetricType::Gauge,
            "The peer's role as its last hello said: 1 on the series of that role.");
  for (const v1::PeerStatus& p : s.peers()) {
    for (v1::Role role : kRoles) {
      b->Add(p.role() == role ? 1 : 0, {{"peer", p.id()}, {"role", RoleLabel(role)}});
    }
  }
  auto each_path = [&](auto&& add) {
    for (const v1::PeerStatus& p : s.peers()) {
      for (int i = 0; i < p.paths_size(); ++i) add(p.id(), absl::StrCat(i), p.paths(i));
    }
  };
  using Labels = std::vector<ClientMetric::Label>;
  b->Family("cloudha_path_up", MetricType::Gauge,
            "1 when a hello reply came back on the path within interval_ms * lost_threshold.");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    b->Add(path.state() == v1::PeerStatus::UP, Labels{{"peer", peer}, {"path", i}});
  });
  b->Family("cloudha_path_last_reply_age_seconds", MetricType::Gauge,
            "Seconds since the last hello reply on the path (absent before the first).");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    if (path.last_reply_age_ms() >= 0) {
      b->Add(Seconds(static_cast<double>(path.last_reply_age_ms())),
             Labels{{"peer", peer}, {"path", i}});
    }
  });
  b->Family("cloudha_path_info", MetricType::Gauge, "The address of each path to each peer.");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    b->Add(1, Labels{{"peer", peer}, {"path", i}, {"address", path.address()}});
  });
  b->Family("cloudha_path_hellos_sent_total", MetricType::Counter, "Hellos sent on the path.");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    b->Add(static_cast<double>(path.hellos_sent()), Labels{{"peer", peer}, {"path", i}});
  });
  b->Family("cloudha_path_hellos_received_total", MetricType::Counter,
            "Hello replies received on the path.");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    b->Add(static_cast<double>(path.hellos_received()), Labels{{"peer", peer}, {"path", i}});
  });
  b->Family("cloudha_path_loss_ratio", MetricType::Gauge,
            "Share of the path's recent hellos that got no reply (0 to 1).");
  each_path([&](const std::string& peer, const std::string& i, const v1::PathStatus& path) {
    b->Add(path.loss_pct() / 100.0, Labels{{"peer", peer}, {"path", i}});
  });
}

void AddSessions(const v1::StatusResponse& s, FamilyBuilder* b) {
  const v1::SessionSyncStatus& ss = s.sessions();
  // Session sync off (sessions.pickup false): no series.
  if (ss.source().empty()) return;
  b->Gauge("cloudha_sessions",
           "Sessions in the local table (the source on a primary, the replica on a secondary).",
           static_cast<double>(ss.table_size()));
  b->Counter("cloudha_sessions_refused_total",
             "Sessions refused because the table held sessions.max_sessions.",
             static_cast<double>(ss.refused_max_sessions()));
  b->Counter("cloudha_sessions_batches_refused_total",
             "Replicated session batches refused as malformed or out of order.",
             static_cast<double>(ss.batches_refused()));
  b->Gauge("cloudha_sessions_lag_changes",
           "On a secondary: changes the primary has that this replica has not applied.",
           static_cast<double>(ss.lag_entries()));
  b->Gauge("cloudha_sessions_lag_seconds",
           "On a secondary: how old the last applied batch was when it was applied (a stalled "
           "stream shows in cloudha_sessions_lag_changes).",
           Seconds(ss.lag_ms()));
  b->Family("cloudha_sessions_snapshots_total", MetricType::Counter,
            "Session streams begun with a full snapshot: sent as primary, received as secondary.");
  b->Add(static_cast<double>(ss.snapshots_sent()), {{"direction", "sent"}});
  b->Add(static_cast<double>(ss.snapshots_received()), {{"direction", "received"}});
  b->Family("cloudha_sessions_resumes_total", MetricType::Counter,
            "Session streams resumed from the secondary's position instead of a snapshot.");
  b->Add(static_cast<double>(ss.resumes_sent()), {{"direction", "sent"}});
  b->Add(static_cast<double>(ss.resumes_received()), {{"direction", "received"}});
  b->Counter("cloudha_sessions_conntrack_overruns_total",
             "Times the kernel's conntrack event queue overflowed (events lost; a dump follows).",
             static_cast<double>(ss.overruns()));
  // The kernel's series only with the conntrack source.
  if (!ss.commit().empty()) {
    b->Family("cloudha_sessions_kernel_changes_total", MetricType::Counter,
              "Replicated changes this node wrote into its kernel's conntrack table, by outcome.");
    b->Add(static_cast<double>(ss.kernel_written()), {{"change", "written"}});
    b->Add(static_cast<double>(ss.kernel_deleted()), {{"change", "deleted"}});
    b->Add(static_cast<double>(ss.kernel_failed()), {{"change", "failed"}});
    b->Gauge("cloudha_sessions_promotion_commit_seconds",
             "How long the last promotion took to write the replica into the kernel.",
             Seconds(ss.promotion_commit_ms()));
  }
  b->Family("cloudha_peer_sessions_lag_changes", MetricType::Gauge,
            "On a primary: changes the secondary has not acknowledged yet.");
  for (const v1::PeerStatus& p : s.peers()) {
    if (!p.sessions().state().empty()) {
      b->Add(static_cast<double>(p.sessions().lag_entries()), {{"peer", p.id()}});
    }
  }
  b->Family("cloudha_peer_sessions_lag_seconds", MetricType::Gauge,
            "On a primary: age of the oldest change the secondary has not acknowledged.");
  for (const v1::PeerStatus& p : s.peers()) {
    if (!p.sessions().state().empty()) b->Add(Seconds(p.sessions().lag_ms()), {{"peer", p.id()}});
  }
}

void AddConfig(const v1::StatusResponse& s, FamilyBuilder* b) {
  const v1::ConfigSyncStatus& c = s.config();
  b->Gauge("cloudha_config_revision", "The revision of this node's config store.",
           static_cast<double>(c.revision()));
  b->Gauge("cloudha_config_entries", "Entries in this node's config store.",
           static_cast<double>(c.entries()));
  b->Gauge("cloudha_config_in_sync",
           "1 when this node's synced config matches the primary's (always 1 on the primary).",
           c.in_sync() ? 1 : 0);
  b->Family("cloudha_config_checksum_match", MetricType::Gauge,
            "1 when the peer's synced config checksum equals this node's (only peers compared).");
  for (const v1::PeerStatus& p : s.peers()) {
    if (p.config().compared()) b->Add(p.config().checksum_match() ? 1 : 0, {{"peer", p.id()}});
  }
  b->Counter("cloudha_config_resyncs_total", "Full resyncs of this node's store from the primary.",
             static_cast<double>(c.resyncs()));
  b->Gauge("cloudha_config_last_resync_seconds", "How long the last resync took.",
           Seconds(c.last_resync_ms()));
  b->Counter("cloudha_config_hook_failures_total", "Config apply hooks that failed.",
             static_cast<double>(c.hook_failures()));
}

void AddMonitorsTlsArbiter(const v1::StatusResponse& s, absl::Time now, FamilyBuilder* b) {
  b->Family("cloudha_monitor_up", MetricType::Gauge, "1 when the monitor's last checks pass.");
  for (const v1::MonitorStatus& m : s.monitors()) b->Add(m.passing() ? 1 : 0, {{"monitor", m.name()}});
  const int64_t now_s = absl::ToUnixSeconds(now);
  if (s.tls().certificate_not_after_s() != 0) {
    b->Gauge("cloudha_tls_certificate_expires_in_seconds",
             "Seconds until this node's certificate expires (negative: expired).",
             static_cast<double>(s.tls().certificate_not_after_s() - now_s));
  }
  b->Family("cloudha_tls_ca_expires_in_seconds", MetricType::Gauge,
            "Seconds until each trusted CA certificate expires (negative: expired).");
  // By fingerprint too: a rotation's bundle holds two CAs of the same name.
  for (const v1::TrustedCaStatus& ca : s.tls().cas()) {
    b->Add(static_cast<double>(ca.not_after_s() - now_s),
           {{"ca", ca.name()}, {"fingerprint", ca.fingerprint()}});
  }
  b->Counter("cloudha_tls_reloads_total", "New TLS material installed while running.",
             static_cast<double>(s.tls().reloads()));
  const v1::ArbiterStatus& a = s.arbiter();
  if (!a.backend().empty()) {
    b->Gauge("cloudha_arbiter_reachable", "1 when the arbiter answered the last request.",
             a.reachable() ? 1 : 0);
    b->Gauge("cloudha_arbiter_lease_held", "1 while this node holds the primary lease.",
             a.lease_held() ? 1 : 0);
    b->Gauge("cloudha_arbiter_lease_remaining_seconds",
             "Seconds left on the lease this node holds (0 without one).",
             Seconds(static_cast<double>(a.lease_remaining_ms())));
    b->Gauge("cloudha_arbiter_fence", "The fencing token of the lease this node holds.",
             static_cast<double>(a.fence()));
  }
}

}  // namespace

const char* HookResultLabel(const CommandOutcome& outcome) {
  return outcome.ok() ? "ok" : outcome.timed_out ? "timeout" : "failed";
}

std::vector<MetricFamily> StatusFamilies(const v1::StatusResponse& status,
                                         const std::string& cluster, absl::Time now) {
  FamilyBuilder b(cluster);
  AddRole(status, &b);
  AddPeers(status, &b);
  AddSessions(status, &b);
  AddConfig(status, &b);
  AddMonitorsTlsArbiter(status, now, &b);
  return b.Take();
}

Metrics::Metrics(const v1::AgentConfig& config)
    : cluster_(config.cluster().name()),
      registry_(std::make_shared<prometheus::Registry>()),
      role_changes_(prometheus::BuildCounter()
                        .Name("cloudha_role_changes_total")
                        .Help("Role changes of this node, by the role it changed to and why.")
                        .Labels({{"cluster", cluster_}})
                        .Register(*registry_)),
      rtt_(prometheus::BuildHistogram()
               .Name("cloudha_path_rtt_seconds")
               .Help("Round-trip time of hellos on each path.")
               .Labels({{"cluster", cluster_}})
               .Register(*registry_)),
      refused_(prometheus::BuildCounter()
                   .Name("cloudha_connections_refused_total")
                   .Help("Peer streams refused, either direction, by who the certificate named "
                         "and why.")
                   .Labels({{"cluster", cluster_}})
                   .Register(*registry_)),
      hook_runs_(prometheus::BuildCounter()
                     .Name("cloudha_hook_runs_total")
                     .Help("Hook commands run, by hook event and result.")
                     .Labels({{"cluster", cluster_}})
                     .Register(*registry_)),
      hook_duration_(prometheus::BuildHistogram()
                         .Name("cloudha_hook_duration_seconds")
                         .Help("How long hook commands ran, by hook event.")
                         .Labels({{"cluster", cluster_}})
                         .Register(*registry_)),
      config_writes_refused_(prometheus::BuildCounter()
                                 .Name("cloudha_config_writes_refused_total")
                                 .Help("Config writes (put, delete) refused, by gRPC status code.")
                                 .Labels({{"cluster", cluster_}})
                                 .Register(*registry_)) {
  prometheus::BuildGauge()
      .Name("cloudha_build_info")
      .Help("The agent's version and the commit it was built from (always 1).")
      .Labels({{"cluster", cluster_}})
      .Register(*registry_)
      .Add({{"version", BuildVersion()}, {"commit", BuildCommit()}})
      .Set(1);
  // Every counter's series exist from the start (at 0), so that the first
  // event is an increase (what rate() and increase() see), not a new series.
  for (const auto& [cause, to] : kRoleCauses) {
    role_changes_.Add({{"to", RoleLabel(to)}, {"cause", cause}});
  }
  for (int e = v1::HookConfig::Event_MIN; e <= v1::HookConfig::Event_MAX; ++e) {
    if (!v1::HookConfig::Event_IsValid(e) || e == v1::HookConfig::EVENT_UNSPECIFIED) continue;
    const std::string hook =
        absl::AsciiStrToLower(v1::HookConfig::Event_Name(static_cast<v1::HookConfig::Event>(e)));
    for (const char* result : kHookResults) hook_runs_.Add({{"hook", hook}, {"result", result}});
    hook_duration_.Add({{"hook", hook}}, HookBuckets());
  }
  for (const char* result : kHookResults) {
    hook_runs_.Add({{"hook", "config_apply"}, {"result", result}});
  }
  hook_duration_.Add({{"hook", "config_apply"}}, HookBuckets());
  for (absl::StatusCode code : kWriteRefusals) {
    config_writes_refused_.Add({{"code", StatusCodeLabel(code)}});
  }
  for (const char* reason : kRefusalReasons) {
    refused_.Add({{"peer", "unknown"}, {"reason", reason}});
    for (const v1::PeerConfig& peer : config.peers()) {
      refused_.Add({{"peer", peer.id()}, {"reason", reason}});
    }
  }
  for (const v1::PeerConfig& peer : config.peers()) {
    peers_.insert(peer.id());
    for (int i = 0; i < peer.addresses_size(); ++i) {
      rtt_by_path_[{peer.id(), i}] =
          &rtt_.Add({{"peer", peer.id()}, {"path", absl::StrCat(i)}}, RttBuckets());
    }
  }
}

void Metrics::RoleChanged(v1::Role to, const char* cause) {
  role_changes_.Add({{"to", RoleLabel(to)}, {"cause", *cause != 0 ? cause : "other"}}).Increment();
}

void Metrics::HelloRoundTrip(const std::string& peer, int path, absl::Duration rtt) {
  auto it = rtt_by_path_.find({peer, path});
  if (it != rtt_by_path_.end()) it->second->Observe(absl::ToDoubleSeconds(rtt));
}

void Metrics::ConnectionRefused(const std::string& peer, const std::string& reason) {
  refused_.Add({{"peer", peers_.count(peer) != 0 ? peer : "unknown"}, {"reason", reason}})
      .Increment();
}

void Metrics::HookRan(const std::string& hook, const std::string& result, absl::Duration took) {
  hook_runs_.Add({{"hook", hook}, {"result", result}}).Increment();
  hook_duration_.Add({{"hook", hook}}, HookBuckets()).Observe(absl::ToDoubleSeconds(took));
}

void Metrics::ConfigWriteRefused(absl::StatusCode code) {
  config_writes_refused_.Add({{"code", StatusCodeLabel(code)}}).Increment();
}

std::string Metrics::Scrape(const v1::StatusResponse& status, absl::Time now) const {
  std::vector<MetricFamily> families = registry_->Collect();
  std::vector<MetricFamily> more = StatusFamilies(status, cluster_, now);
  families.insert(families.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace cloudha
