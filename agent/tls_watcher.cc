#include "agent/tls_watcher.h"

#include <pthread.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/secure_file.h"

namespace cloudha {
namespace {

std::string Date(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

std::vector<std::string> Fingerprints(const TlsMaterial& m) {
  std::vector<std::string> out;
  for (const TrustedCa& ca : m.cas) out.push_back(ca.fingerprint);
  return out;
}

// What changed from `before` to `after`, in one line.
std::string DescribeChange(const TlsMaterial& before, const TlsMaterial& after) {
  std::vector<std::string> parts;
  if (before.fingerprint != after.fingerprint) {
    parts.push_back(absl::StrCat(
        "certificate ", after.fingerprint, " (expires ", Date(after.not_after), ", issued by ",
        after.cas[after.issuer].fingerprint, "; was ", before.fingerprint, ")"));
  }
  std::vector<std::string> cas_before = Fingerprints(before);
  std::vector<std::string> cas_after = Fingerprints(after);
  if (cas_before != cas_after) {
    parts.push_back(absl::StrCat(
        "trusts ", cas_after.size(), " CA", cas_after.size() == 1 ? "" : "s", ": ",
        absl::StrJoin(cas_after, ", "), " (was ", absl::StrJoin(cas_before, ", "), ")"));
  }
  if (parts.empty()) parts.push_back("the same certificate and CAs (the files changed otherwise)");
  return absl::StrCat("TLS material reloaded: ", absl::StrJoin(parts, "; "));
}

const char* StageName(ExpiryStage stage) {
  switch (stage) {
    case ExpiryStage::kWithin30Days:
      return "30d";
    case ExpiryStage::kWithin7Days:
      return "7d";
    case ExpiryStage::kExpired:
      return "expired";
    default:
      return "far";
  }
}

}  // namespace

TlsWatcher::TlsWatcher(Options options, TlsMaterial material, Clock* clock, InstallFn install,
                       NoticeFn notice)
    : options_(std::move(options)),
      clock_(clock),
      install_(std::move(install)),
      notice_(std::move(notice)),
      material_(std::move(material)) {}

TlsWatcher::~TlsWatcher() { Stop(); }

void TlsWatcher::Start() {
  if (started_) return;
  started_ = true;
  in_use_files_ = ReadFiles();
  AnnounceExpiry();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tls");
    Run();
  });
}

void TlsWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
  }
  if (thread_.joinable()) thread_.join();
}

void TlsWatcher::ReloadNow() {
  absl::MutexLock lock(&mu_);
  reload_requested_ = true;
  if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
}

TlsMaterial TlsWatcher::material() const {
  absl::MutexLock lock(&mu_);
  return material_;
}

std::string TlsWatcher::ReadFiles() const {
  std::string out;
  for (const std::string* path :
       {&options_.files.ca_file, &options_.files.cert_file, &options_.files.key_file}) {
    absl::StatusOr<std::string> content = ReadSmallFile(*path);
    // Length-prefixed, so that no two different sets read the same.
    absl::StrAppend(&out, content.ok() ? "+" : "!", content.ok() ? content->size() : 0, ":",
                    content.ok() ? *content : content.status().ToString(), "\n");
  }
  return out;
}

void TlsWatcher::Run() {
  absl::Time next_poll = clock_->Now() + options_.poll_interval;
  absl::Time next_expiry = clock_->Now() + options_.expiry_interval;
  while (true) {
    auto wake = std::make_shared<absl::Notification>();
    bool asked = false;
    {
      absl::MutexLock lock(&mu_);
      if (stop_.HasBeenNotified()) return;
      asked = std::exchange(reload_requested_, false);
      if (!asked) wake_ = wake;
    }
    if (!asked) {
      clock_->SleepUntil(std::min(next_poll, next_expiry), *wake);
      absl::MutexLock lock(&mu_);
      if (stop_.HasBeenNotified()) return;
      asked = std::exchange(reload_requested_, false);
    }
    absl::Time now = clock_->Now();
    if (asked || now >= next_poll) {
      CheckFiles(asked);
      next_poll = clock_->Now() + options_.poll_interval;
    }
    if (clock_->Now() >= next_expiry) {
      AnnounceExpiry();
      next_expiry = clock_->Now() + options_.expiry_interval;
    }
  }
}

void TlsWatcher::CheckFiles(bool asked) {
  std::string files = ReadFiles();
  if (files == in_use_files_) {
    // Unchanged, or put back after a refusal.
    previous_files_.clear();
    {
      absl::MutexLock lock(&mu_);
      last_error_.clear();
    }
    if (asked) {
      notice_({LogLevel::kInfo,
               "tls_unchanged",
               "reload asked: the TLS files are those in use, nothing to do",
               {}});
    }
    return;
  }
  // An operator copying the files one by one is not caught half way: they
  // must read the same at two polls in a row (SIGHUP says they are done).
  // Files refused once are judged again when they change, or when asked.
  bool settled = asked || files == previous_files_;
  previous_files_ = files;
  if (!settled || (!asked && files == refused_files_)) return;

  TlsMaterial in_use = material();
  absl::StatusOr<TlsMaterial> loaded = LoadTlsMaterial(options_.files, clock_->WallNow());
  absl::Status problem = loaded.status();
  if (loaded.ok() && loaded->identity != in_use.identity) {
    problem = absl::FailedPreconditionError(
        absl::StrCat(options_.files.cert_file, " is now for node \"", loaded->identity.node,
                     "\" of cluster \"", loaded->identity.cluster, "\", but this is node \"",
                     in_use.identity.node, "\" of cluster \"", in_use.identity.cluster, "\""));
  }
  // Changed again while being checked: judge the newest at the next poll.
  if (problem.ok() && ReadFiles() != files) return;
  if (problem.ok()) problem = install_(*loaded);
  if (!problem.ok()) {
    refused_files_ = files;
    {
      absl::MutexLock lock(&mu_);
      last_error_ = std::string(problem.message());
    }
    notice_({LogLevel::kError,
             "tls_refused",
             absl::StrCat("new TLS files refused, the material in use stays: ", problem.message()),
             {{"reason", std::string(problem.message())}}});
    return;
  }
  // New handshakes take it up within pick_up; only then is it in use.
  if (!clock_->SleepUntil(clock_->Now() + options_.pick_up, stop_)) return;
  {
    absl::MutexLock lock(&mu_);
    material_ = *loaded;
    ++reloads_;
    last_reload_ = clock_->WallNow();
    last_error_.clear();
  }
  in_use_files_ = files;
  previous_files_.clear();
  refused_files_.clear();
  notice_({LogLevel::kInfo,
           "tls_reloaded",
           DescribeChange(in_use, *loaded),
           {{"certificate", loaded->fingerprint},
            {"not_after", Date(loaded->not_after)},
            {"issuer", loaded->cas[loaded->issuer].fingerprint},
            {"cas", absl::StrJoin(Fingerprints(*loaded), ",")}}});
  AnnounceExpiry();
}

void TlsWatcher::AnnounceExpiry() {
  TlsMaterial in_use = material();
  for (const ExpiryWarning& w : announcer_.Due(in_use, clock_->WallNow())) {
    notice_({LogLevel::kWarn,
             w.what == "certificate" ? "certificate_expiring" : "ca_expiring",
             w.message,
             {{"fingerprint", w.fingerprint},
              {"not_after", Date(w.not_after)},
              {"stage", StageName(w.stage)}}});
  }
}

v1::TlsStatus TlsWatcher::Status() const {
  absl::Time now = clock_->WallNow();
  absl::MutexLock lock(&mu_);
  v1::TlsStatus status;
  status.set_ca_file(options_.files.ca_file);
  status.set_cert_file(options_.files.cert_file);
  status.set_key_file(options_.files.key_file);
  status.set_certificate_fingerprint(material_.fingerprint);
  status.set_certificate_not_after_s(absl::ToUnixSeconds(material_.not_after));
  for (size_t i = 0; i < material_.cas.size(); ++i) {
    v1::TrustedCaStatus* ca = status.add_cas();
    ca->set_name(material_.cas[i].name);
    ca->set_fingerprint(material_.cas[i].fingerprint);
    ca->set_not_after_s(absl::ToUnixSeconds(material_.cas[i].not_after));
    ca->set_issued_this_node(i == material_.issuer);
  }
  for (const ExpiryWarning& w : ExpiryWarnings(material_, now)) status.add_warnings(w.message);
  status.set_reloads(reloads_);
  status.set_last_reload_ms(reloads_ == 0 ? 0 : absl::ToUnixMillis(last_reload_));
  status.set_last_error(last_error_);
  return status;
}

}  // namespace cloudha
