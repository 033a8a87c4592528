// The event history `cloudha events` shows: the last 1000 role, peer, path,
// monitor and hook events, with followers that wait for new ones.
#ifndef CLOUDHA_AGENT_EVENT_LOG_H_
#define CLOUDHA_AGENT_EVENT_LOG_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/admin.pb.h"

namespace cloudha {

// Thread-safe.
class EventLog {
 public:
  static constexpr size_t kCapacity = 1000;

  // Adds an event at wall-clock time `when`.
  void Add(absl::Time when, const std::string& kind, const std::string& message,
           std::map<std::string, std::string> fields = {});

  // Events with a sequence number above `after` (all kept ones for 0), and
  // the last sequence number handed out.
  std::vector<v1::Event> Since(uint64_t after, uint64_t* last) const;

  // Waits up to `timeout` (real time) for an event above `after`; returns
  // whether one is there.
  bool WaitForNew(uint64_t after, absl::Duration timeout) const;

 private:
  mutable absl::Mutex mu_;
  std::deque<std::pair<uint64_t, v1::Event>> events_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_EVENT_LOG_H_
