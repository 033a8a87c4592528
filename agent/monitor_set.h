// The node's local health: each configured monitor runs its check every
// interval on a thread of its own, and turns failing after `fall`
// consecutive failures and passing after `rise` consecutive successes (the
// first check decides the initial state). The health penalty is the summed
// weight of the failing monitors.
#ifndef CLOUDHA_AGENT_MONITOR_SET_H_
#define CLOUDHA_AGENT_MONITOR_SET_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "base/clock.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/config.pb.h"

namespace cloudha {

// The rise/fall state of one monitor. Not thread-safe (MonitorSet locks).
class MonitorState {
 public:
  MonitorState(uint32_t rise, uint32_t fall) : rise_(rise), fall_(fall) {}

  // Records a result; returns true when the monitor changed between passing
  // and failing.
  bool Record(const absl::Status& result, absl::Time now);

  bool checked() const { return checked_; }
  bool passing() const { return passing_; }
  uint32_t streak() const { return streak_; }
  const std::string& last_result() const { return last_result_; }
  absl::Time last_check() const { return last_check_; }

 private:
  uint32_t rise_;
  uint32_t fall_;
  bool checked_ = false;
  bool passing_ = true;
  // Consecutive results that disagree with the current state.
  uint32_t against_ = 0;
  // Consecutive results that agree with it.
  uint32_t streak_ = 0;
  std::string last_result_;
  absl::Time last_check_;
};

// Thread-safe.
class MonitorSet {
 public:
  using Check = std::function<absl::Status(absl::Duration timeout)>;
  struct Change {
    std::string monitor;
    bool passing;
    std::string result;
  };

  // The check for a configured monitor (exec, tcp or interface).
  static Check CheckFor(const v1::MonitorConfig& config);

  // `on_change` runs on a monitor's thread when it turns passing or failing.
  MonitorSet(std::vector<v1::MonitorConfig> configs, std::vector<Check> checks, Clock* clock,
             std::function<void(const Change&)> on_change);
  ~MonitorSet();
  MonitorSet(const MonitorSet&) = delete;
  MonitorSet& operator=(const MonitorSet&) = delete;

  // Before Start, after a reload: each monitor configured exactly as one of
  // `previous` keeps that one's state (passing or failing, its streak), so
  // that a reload neither forgets a failure nor lets one check decide.
  void AdoptStates(const MonitorSet& previous);
  void Start();
  void Stop();

  // Summed weight of the failing monitors.
  uint32_t penalty() const;
  // Whether there are monitors and every one fails.
  bool all_failing() const;
  std::vector<v1::MonitorStatus> Status(absl::Time now) const;

  // Records a result as a monitor's thread would (for tests).
  void RecordForTest(size_t index, const absl::Status& result);

 private:
  void Run(size_t index);
  void Record(size_t index, const absl::Status& result) ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<v1::MonitorConfig> configs_;
  const std::vector<Check> checks_;
  Clock* clock_;
  std::function<void(const Change&)> on_change_;
  mutable absl::Mutex mu_;
  std::vector<MonitorState> states_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::vector<std::thread> threads_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_MONITOR_SET_H_
