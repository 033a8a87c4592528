// Keeps this node's TLS material current and its expiry in sight.
//
// Every poll interval it reads tls.ca_file, cert_file and key_file; when
// they changed, and read the same twice in a row (an operator copying the
// certificate and then the key is not caught half way), it checks them as a
// whole (LoadTlsMaterial: the key belongs to the certificate, a CA of the
// bundle issued it, it is valid now, it names this very node) and hands the
// new material to `install`, which makes new handshakes use it. Files that
// fail a check are refused with a logged error and the material in use
// stays; they are judged again only when they change once more.
// ReloadNow() (SIGHUP) reads the files at once, without waiting for them to
// settle.
//
// At Start(), every expiry check interval (an hour) and after each reload
// it announces the expiry warnings that became due (agent/certificate_expiry.h).
//
// All timing is on the injected Clock. Thread-safe; Start() once, Stop()
// once (the destructor stops too).
#ifndef CLOUDHA_AGENT_TLS_WATCHER_H_
#define CLOUDHA_AGENT_TLS_WATCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/certificate_expiry.h"
#include "base/clock.h"
#include "base/log.h"
#include "cloudha/v1/admin.pb.h"
#include "crypto/tls_material.h"

namespace cloudha {

class TlsWatcher {
 public:
  struct Options {
    TlsFiles files;
    // How often the files are read to see whether they changed.
    absl::Duration poll_interval = absl::Seconds(1);
    // How often the expiry warnings are checked.
    absl::Duration expiry_interval = absl::Hours(1);
    // How long installed material takes to reach new handshakes: it counts
    // as in use (status, the "reloaded" event) only after that.
    absl::Duration pick_up = absl::Seconds(2);
  };

  // What happened, for the log and the event history.
  struct Notice {
    LogLevel level = LogLevel::kInfo;
    // The log event: tls_reloaded, tls_refused, certificate_expiring,
    // ca_expiring.
    std::string event;
    std::string message;
    std::map<std::string, std::string> fields;
  };

  using InstallFn = std::function<absl::Status(const TlsMaterial&)>;
  using NoticeFn = std::function<void(const Notice&)>;

  // `material` is what the agent started with, loaded from `options.files`.
  // `install` and `notice` are called on the watcher's thread (and from
  // Start()); `clock` outlives the watcher.
  TlsWatcher(Options options, TlsMaterial material, Clock* clock, InstallFn install,
             NoticeFn notice);
  ~TlsWatcher();
  TlsWatcher(const TlsWatcher&) = delete;
  TlsWatcher& operator=(const TlsWatcher&) = delete;

  // Announces the warnings due now, then starts watching.
  void Start();
  void Stop();

  // Reads the files now (SIGHUP). Returns at once; the outcome is a notice.
  void ReloadNow();

  // The material in use.
  TlsMaterial material() const;

  // The status of the material in use, with the warnings in force at the
  // clock's wall time.
  v1::TlsStatus Status() const;

 private:
  // The files' contents, or why they could not be read.
  std::string ReadFiles() const;
  void Run();
  // `settled`: the files read the same at the previous poll (or the
  // operator asked).
  void CheckFiles(bool settled);
  void AnnounceExpiry();

  const Options options_;
  Clock* clock_;
  const InstallFn install_;
  const NoticeFn notice_;

  mutable absl::Mutex mu_;
  TlsMaterial material_ ABSL_GUARDED_BY(mu_);
  uint64_t reloads_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_reload_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  bool reload_requested_ ABSL_GUARDED_BY(mu_) = false;
  // What Run() sleeps on; Stop() and ReloadNow() notify it, each sleep gets
  // a fresh one (a Notification cannot be reset).
  std::shared_ptr<absl::Notification> wake_ ABSL_GUARDED_BY(mu_);

  // The watcher thread's own (and Start()'s, before the thread runs).
  // The files as they were when the material in use was read.
  std::string in_use_files_;
  // The files at the previous poll, while they differ from in_use_files_.
  std::string previous_files_;
  // The files last refused, so that they are refused (and logged) once.
  std::string refused_files_;
  ExpiryAnnouncer announcer_;

  absl::Notification stop_;
  std::thread thread_;
  bool started_ = false;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_TLS_WATCHER_H_
