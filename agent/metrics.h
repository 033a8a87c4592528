// What cloudha tells Prometheus (`metrics.listen`, docs/operator-guide.md
// "Metrics"): the role, peers and paths, session and config sync, hooks,
// monitors, TLS and the arbiter, in the Prometheus text format, through
// prometheus-cpp (Debian's prometheus-cpp-dev).
//
// Two kinds of series:
// - kept here, recorded where the event happens: role changes by cause,
//   hello round trips (a histogram per path), refused connections by
//   reason, hook runs by result and their duration, refused config writes.
//   Nothing else kept these, and a distribution cannot be read off later.
// - read at the scrape from the same StatusResponse `cloudha status` shows
//   (counters and gauges the components already keep: hellos, table sizes,
//   lags, revisions, certificate dates), so the two never disagree and
//   nothing runs between scrapes.
// Every series carries cluster="<cluster.name>"; label values are bounded by
// the configuration (peers, paths, monitors, hooks) or by fixed lists.
#ifndef CLOUDHA_AGENT_METRICS_H_
#define CLOUDHA_AGENT_METRICS_H_

#include <map>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/command_runner.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/config.pb.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace cloudha {

// The content type of the text exposition format Scrape writes.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Thread-safe. The event methods are cheap (atomic adds, a map lookup);
// Scrape builds the text on the scraping thread.
class Metrics {
 public:
  // Label sets come from `config`: the peers and their paths.
  explicit Metrics(const v1::AgentConfig& config);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The role changed to `to`, for `cause` (RoleChange::cause).
  void RoleChanged(v1::Role to, const char* cause);
  // A hello reply on `peer`'s path `path` came back after `rtt`.
  void HelloRoundTrip(const std::string& peer, int path, absl::Duration rtt);
  // A peer's stream was refused (either direction): `peer` as its
  // certificate named it (not a configured peer: "unknown"), `reason` from
  // RefusalReason (agent/peer_verifier.h).
  void ConnectionRefused(const std::string& peer, const std::string& reason);
  // A hook command ran for `hook` (HookEventName: "to_primary", ...; or
  // "config_apply", a config_sync.on_change hook).
  // `result`: "ok", "failed" (exit code not 0, killed, could not start) or
  // "timeout".
  void HookRan(const std::string& hook, const std::string& result, absl::Duration took);
  // A config write (put or delete) through the admin API was refused.
  void ConfigWriteRefused(absl::StatusCode code);

  // The whole exposition: the series kept here, then those of `status`
  // (taken now); `now` is the wall-clock time (certificate expiry).
  std::string Scrape(const v1::StatusResponse& status, absl::Time now) const;

 private:
  using Path = std::pair<std::string, int>;

  const std::string cluster_;
  // Declared before the families and metrics it owns.
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& role_changes_;
  prometheus::Family<prometheus::Histogram>& rtt_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Family<prometheus::Counter>& hook_runs_;
  prometheus::Family<prometheus::Histogram>& hook_duration_;
  prometheus::Family<prometheus::Counter>& config_writes_refused_;
  // One histogram per configured path, made at the start (read-only after,
  // so the hello threads look it up without a lock).
  std::map<Path, prometheus::Histogram*> rtt_by_path_;
  // Configured peers: other names are counted as "unknown".
  std::set<std::string> peers_;
};

// A hook command's result label: "ok", "timeout" or "failed".
const char* HookResultLabel(const CommandOutcome& outcome);

// The series read from a status (for Scrape and tests): families named
// cloudha_*, each series with cluster=`cluster`.
std::vector<prometheus::MetricFamily> StatusFamilies(const v1::StatusResponse& status,
                                                     const std::string& cluster, absl::Time now);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_METRICS_H_
