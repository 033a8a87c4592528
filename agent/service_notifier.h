// What the agent tells the service manager that started it, in systemd's
// notify protocol (sd_notify(3)): READY=1 once the listeners are open and
// the first role decision is made, STATUS= with the role, WATCHDOG=1 from
// the role thread while it runs, STOPPING=1 when a stop begins. Without a
// manager listening (no NOTIFY_SOCKET) every call does nothing.
//
// Thread-safe.
#ifndef CLOUDHA_AGENT_SERVICE_NOTIFIER_H_
#define CLOUDHA_AGENT_SERVICE_NOTIFIER_H_

#include <string>

#include "absl/time/time.h"

namespace cloudha {

class ServiceNotifier {
 public:
  virtual ~ServiceNotifier() = default;
  // READY=1 with STATUS=`status`.
  virtual void Ready(const std::string& status) = 0;
  virtual void Status(const std::string& status) = 0;
  virtual void Stopping() = 0;
  virtual void Watchdog() = 0;
  // How often the manager expects WATCHDOG=1 at the latest
  // (WatchdogSec=); zero when it does not watch.
  virtual absl::Duration watchdog_timeout() const = 0;
};

// The notifier of a process systemd started (libsystemd's sd_notify).
class SystemdNotifier : public ServiceNotifier {
 public:
  SystemdNotifier();
  // Whether a manager listens (NOTIFY_SOCKET is set): without one the
  // agent need not compute what it would say.
  bool active() const { return active_; }
  void Ready(const std::string& status) override;
  void Status(const std::string& status) override;
  void Stopping() override;
  void Watchdog() override;
  absl::Duration watchdog_timeout() const override { return watchdog_timeout_; }

 private:
  absl::Duration watchdog_timeout_ = absl::ZeroDuration();
  bool active_ = false;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_SERVICE_NOTIFIER_H_
