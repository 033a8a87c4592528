#include "agent/tls_watcher.h"

#include <cstdlib>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/fake_clock.h"
#include "base/secure_file.h"
#include "crypto/certificate_authority.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kDay = absl::Hours(24);

class TlsWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tls_watcher_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    files_ = {dir_ + "/ca.crt", dir_ + "/a.crt", dir_ + "/a.key"};
    ASSERT_TRUE(MakeDirectories(dir_, 0700).ok());
    now_ = clock_.WallNow();
    ca_ = CreateClusterCa("demo", {now_ - absl::Hours(1), 3650 * kDay}).value();
    WriteFiles(ca_.cert_pem, Issue(ca_, "a", 365 * kDay));
  }

  void TearDown() override {
    if (watcher_ != nullptr) watcher_->Stop();
  }

  PemPair Issue(const PemPair& ca, const std::string& node, absl::Duration lifetime) {
    return IssueNodeCertificate(ca, {"demo", node}, {now_ - absl::Hours(1), lifetime}).value();
  }

  void WriteFiles(const std::string& bundle, const PemPair& node) {
    ASSERT_TRUE(WriteFileAtomically(files_.ca_file, bundle, 0644, Overwrite::kReplace).ok());
    ASSERT_TRUE(
        WriteFileAtomically(files_.cert_file, node.cert_pem, 0644, Overwrite::kReplace).ok());
    ASSERT_TRUE(WriteFileAtomically(files_.key_file, node.key_pem, 0600, Overwrite::kReplace).ok());
  }

  // Starts a watcher on the files as they are now.
  void StartWatcher() {
    absl::StatusOr<TlsMaterial> loaded = LoadTlsMaterial(files_, clock_.WallNow());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    TlsWatcher::Options options;
    options.files = files_;
    watcher_ = std::make_unique<TlsWatcher>(
        options, *loaded, &clock_,
        [this](const TlsMaterial& m) {
          absl::MutexLock lock(&mu_);
          installed_.push_back(m);
          changed_.SignalAll();
          return install_result_;
        },
        [this](const TlsWatcher::Notice& n) {
          absl::MutexLock lock(&mu_);
          notices_.push_back(n);
          changed_.SignalAll();
        });
    watcher_->Start();
  }

  int Count(const std::string& event) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const TlsWatcher::Notice& notice : notices_) n += notice.event == event;
    return n;
  }

  TlsWatcher::Notice Last(const std::string& event) {
    absl::MutexLock lock(&mu_);
    for (auto it = notices_.rbegin(); it != notices_.rend(); ++it) {
      if (it->event == event) return *it;
    }
    return {};
  }

  size_t Installed() {
    absl::MutexLock lock(&mu_);
    return installed_.size();
  }

  // Moves the clock `step` at a time until `done` holds, giving the watcher
  // a moment after each step; false after `steps` steps.
  bool AdvanceUntil(const std::function<bool()>& done, absl::Duration step = absl::Seconds(1),
                    int steps = 30) {
    for (int i = 0; i < steps; ++i) {
      if (WaitFor(done, absl::Milliseconds(30))) return true;
      clock_.Advance(step);
    }
    return WaitFor(done, absl::Seconds(1));
  }

  // Waits (real time) for `done`, checked whenever a notice or an install
  // arrives (and every few milliseconds, for one that came between the
  // check and the wait).
  bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (!done()) {
      if (absl::Now() >= deadline) return false;
      absl::MutexLock lock(&mu_);
      changed_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
    }
    return true;
  }

  FakeClock clock_;
  absl::Time now_;
  std::string dir_;
  TlsFiles files_;
  PemPair ca_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<TlsMaterial> installed_ ABSL_GUARDED_BY(mu_);
  std::vector<TlsWatcher::Notice> notices_ ABSL_GUARDED_BY(mu_);
  absl::Status install_result_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TlsWatcher> watcher_;
};

TEST_F(TlsWatcherTest, WarnsAtStartThenAgainSevenDaysBefore) {
  WriteFiles(ca_.cert_pem, Issue(ca_, "a", 10 * kDay));
  StartWatcher();
  // Announced by Start() itself.
  ASSERT_EQ(Count("certificate_expiring"), 1);
  EXPECT_EQ(Last("certificate_expiring").fields.at("stage"), "30d");
  EXPECT_THAT(Last("certificate_expiring").message, HasSubstr("expires in 9 days"));
  ASSERT_EQ(watcher_->Status().warnings_size(), 1);
  // The hourly check finds the 7-day mark within the hour.
  ASSERT_TRUE(
      AdvanceUntil([&] { return Count("certificate_expiring") == 2; }, absl::Hours(1), 4 * 24))
      << "no second warning";
  EXPECT_EQ(Last("certificate_expiring").fields.at("stage"), "7d");
  absl::Duration left = watcher_->material().not_after - clock_.WallNow();
  EXPECT_LE(left, 7 * kDay);
  EXPECT_GT(left, 7 * kDay - absl::Hours(2));
  // Nothing more until it expires.
  AdvanceUntil([] { return false; }, absl::Hours(1), 24);
  EXPECT_EQ(Count("certificate_expiring"), 2);
  EXPECT_EQ(Count("ca_expiring"), 0);
}

TEST_F(TlsWatcherTest, NoWarningForAFreshCertificate) {
  StartWatcher();
  AdvanceUntil([] { return false; }, absl::Hours(1), 5);
  EXPECT_EQ(Count("certificate_expiring"), 0);
  EXPECT_EQ(watcher_->Status().warnings_size(), 0);
  EXPECT_EQ(watcher_->Status().cas_size(), 1);
  EXPECT_TRUE(watcher_->Status().cas(0).issued_this_node());
}

TEST_F(TlsWatcherTest, ChangedFilesAreCheckedInstalledAndThenInUse) {
  StartWatcher();
  std::string before = watcher_->material().fingerprint;
  PemPair renewed = Issue(ca_, "a", 700 * kDay);
  WriteFiles(ca_.cert_pem, renewed);
  ASSERT_TRUE(AdvanceUntil([&] { return Installed() == 1; }));
  // Installed, but in use only once gRPC has had the time to pick it up.
  EXPECT_EQ(watcher_->material().fingerprint, before);
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 1; }));
  EXPECT_EQ(watcher_->material().fingerprint, *CertificateFingerprint(renewed.cert_pem));
  EXPECT_THAT(Last("tls_reloaded").message, HasSubstr(absl::StrCat("was ", before)));
  v1::TlsStatus status = watcher_->Status();
  EXPECT_EQ(status.reloads(), 1u);
  EXPECT_GT(status.last_reload_ms(), 0);
  EXPECT_EQ(status.certificate_fingerprint(), *CertificateFingerprint(renewed.cert_pem));
  // Unchanged files are not installed again.
  AdvanceUntil([] { return false; }, absl::Seconds(1), 5);
  EXPECT_EQ(Installed(), 1u);
}

TEST_F(TlsWatcherTest, BadFilesAreRefusedOnceAndTheMaterialInUseStays) {
  StartWatcher();
  std::string before = watcher_->material().fingerprint;
  PemPair good = Issue(ca_, "a", 365 * kDay);
  PemPair other = Issue(ca_, "a", 365 * kDay);
  // A certificate with the key of another.
  WriteFiles(ca_.cert_pem, {good.cert_pem, other.key_pem});
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_refused") == 1; }));
  EXPECT_EQ(Last("tls_refused").level, LogLevel::kError);
  EXPECT_THAT(Last("tls_refused").message, HasSubstr("does not belong to the certificate"));
  EXPECT_THAT(Last("tls_refused").message, HasSubstr("the material in use stays"));
  EXPECT_THAT(watcher_->Status().last_error(), HasSubstr("does not belong"));
  EXPECT_EQ(Installed(), 0u);
  EXPECT_EQ(watcher_->material().fingerprint, before);
  // Judged once, not at every poll.
  AdvanceUntil([] { return false; }, absl::Seconds(1), 5);
  EXPECT_EQ(Count("tls_refused"), 1);
  // SIGHUP judges them again (and says so).
  watcher_->ReloadNow();
  ASSERT_TRUE(WaitFor([&] { return Count("tls_refused") == 2; }, absl::Seconds(5)));
  // Fixed files are taken.
  WriteFiles(ca_.cert_pem, good);
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 1; }));
  EXPECT_EQ(watcher_->Status().last_error(), "");
  EXPECT_EQ(watcher_->material().fingerprint, *CertificateFingerprint(good.cert_pem));
}

TEST_F(TlsWatcherTest, ACertificateForAnotherNodeIsRefused) {
  StartWatcher();
  WriteFiles(ca_.cert_pem, Issue(ca_, "b", 365 * kDay));
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_refused") == 1; }));
  EXPECT_THAT(Last("tls_refused").message, HasSubstr("is now for node \"b\""));
  EXPECT_EQ(Installed(), 0u);
}

TEST_F(TlsWatcherTest, ACaBundleWithoutTheIssuerIsRefused) {
  StartWatcher();
  PemPair other = CreateClusterCa("demo", {now_ - absl::Hours(1), 3650 * kDay}).value();
  ASSERT_TRUE(WriteFileAtomically(files_.ca_file, other.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_refused") == 1; }));
  EXPECT_THAT(Last("tls_refused").message, HasSubstr("not valid under the CA"));
}

TEST_F(TlsWatcherTest, AnInstallThatFailsIsARefusal) {
  {
    absl::MutexLock lock(&mu_);
    install_result_ = absl::FailedPreconditionError("disk full");
  }
  StartWatcher();
  std::string before = watcher_->material().fingerprint;
  WriteFiles(ca_.cert_pem, Issue(ca_, "a", 365 * kDay));
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_refused") == 1; }));
  EXPECT_THAT(Last("tls_refused").message, HasSubstr("disk full"));
  EXPECT_EQ(watcher_->material().fingerprint, before);
}

TEST_F(TlsWatcherTest, ReloadNowDoesNotWaitForThePoll) {
  StartWatcher();
  // Nothing changed: said so.
  watcher_->ReloadNow();
  ASSERT_TRUE(WaitFor([&] { return Count("tls_unchanged") == 1; }, absl::Seconds(5)));
  WriteFiles(ca_.cert_pem, Issue(ca_, "a", 365 * kDay));
  watcher_->ReloadNow();
  // Installed without the clock moving at all.
  ASSERT_TRUE(WaitFor([&] { return Installed() == 1; }, absl::Seconds(5)));
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 1; }));
}

// The three steps of a CA rotation, as one node sees them.
TEST_F(TlsWatcherTest, FollowsACaRotation) {
  StartWatcher();
  PemPair next = CreateClusterCa("demo", {now_ - absl::Hours(1), 3650 * kDay}).value();
  const std::string old_fp = *CertificateFingerprint(ca_.cert_pem);
  const std::string next_fp = *CertificateFingerprint(next.cert_pem);
  PemPair cert = Issue(ca_, "a", 365 * kDay);
  // 1. Both CAs trusted.
  WriteFiles(ca_.cert_pem + next.cert_pem, cert);
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 1; }));
  v1::TlsStatus s = watcher_->Status();
  ASSERT_EQ(s.cas_size(), 2);
  EXPECT_EQ(s.cas(0).fingerprint(), old_fp);
  EXPECT_TRUE(s.cas(0).issued_this_node());
  EXPECT_FALSE(s.cas(1).issued_this_node());
  EXPECT_THAT(Last("tls_reloaded").message, HasSubstr("trusts 2 CAs"));
  // 2. A certificate of the new CA.
  WriteFiles(ca_.cert_pem + next.cert_pem, Issue(next, "a", 365 * kDay));
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 2; }));
  s = watcher_->Status();
  EXPECT_TRUE(s.cas(1).issued_this_node());
  EXPECT_EQ(Last("tls_reloaded").fields.at("issuer"), next_fp);
  // 3. The old CA retired.
  ASSERT_TRUE(WriteFileAtomically(files_.ca_file, next.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(AdvanceUntil([&] { return Count("tls_reloaded") == 3; }));
  s = watcher_->Status();
  ASSERT_EQ(s.cas_size(), 1);
  EXPECT_EQ(s.cas(0).fingerprint(), next_fp);
  EXPECT_EQ(s.reloads(), 3u);
}

}  // namespace
}  // namespace cloudha
