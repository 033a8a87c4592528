#include "agent/service_notifier.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace cloudha {
namespace {

// One line: the protocol separates assignments with newlines.
std::string OneLine(const std::string& status) {
  return absl::StrReplaceAll(status, {{"\n", " "}});
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  const char* socket = getenv("NOTIFY_SOCKET");
  active_ = socket != nullptr && socket[0] != '\0';
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is ours).
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) {
    watchdog_timeout_ = absl::Microseconds(static_cast<int64_t>(usec));
  }
}

void SystemdNotifier::Ready(const std::string& status) {
  sd_notify(0, absl::StrCat("READY=1\nSTATUS=", OneLine(status)).c_str());
}

void SystemdNotifier::Status(const std::string& status) {
  sd_notify(0, absl::StrCat("STATUS=", OneLine(status)).c_str());
}

void SystemdNotifier::Stopping() { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }

void SystemdNotifier::Watchdog() { sd_notify(0, "WATCHDOG=1"); }

}  // namespace cloudha
