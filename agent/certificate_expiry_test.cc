#include "agent/certificate_expiry.h"

#include "crypto/certificate_authority.h"
#include "crypto/tls_material.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr absl::Duration kDay = absl::Hours(24);

TEST(ExpiryStageTest, ThresholdsAreInclusive) {
  EXPECT_EQ(ExpiryStageAt(kNow + 30 * kDay + absl::Seconds(1), kNow), ExpiryStage::kFar);
  EXPECT_EQ(ExpiryStageAt(kNow + 30 * kDay, kNow), ExpiryStage::kWithin30Days);
  EXPECT_EQ(ExpiryStageAt(kNow + 7 * kDay + absl::Seconds(1), kNow), ExpiryStage::kWithin30Days);
  EXPECT_EQ(ExpiryStageAt(kNow + 7 * kDay, kNow), ExpiryStage::kWithin7Days);
  EXPECT_EQ(ExpiryStageAt(kNow + absl::Seconds(1), kNow), ExpiryStage::kWithin7Days);
  EXPECT_EQ(ExpiryStageAt(kNow, kNow), ExpiryStage::kExpired);
  EXPECT_EQ(ExpiryStageAt(kNow - 400 * kDay, kNow), ExpiryStage::kExpired);
}

TEST(ExpiryStageTest, DescribesTheTimeLeftInPlainWords) {
  absl::Time end = absl::FromCivil(absl::CivilSecond(2027, 1, 15, 12, 0, 0), absl::UTCTimeZone());
  EXPECT_EQ(DescribeExpiry(end, end - 6 * kDay - absl::Hours(5)),
            "in 6 days (2027-01-15 12:00 UTC)");
  EXPECT_EQ(DescribeExpiry(end, end - absl::Hours(30)), "in 30 hours (2027-01-15 12:00 UTC)");
  EXPECT_EQ(DescribeExpiry(end, end - absl::Minutes(90)), "in 90 minutes (2027-01-15 12:00 UTC)");
  EXPECT_EQ(DescribeExpiry(end, end + 3 * kDay), "3 days ago (2027-01-15 12:00 UTC)");
  EXPECT_EQ(DescribeExpiry(end, end - absl::Minutes(1)), "in 1 minute (2027-01-15 12:00 UTC)");
}

class ExpiryWarningsTest : public ::testing::Test {
 protected:
  // A CA of `ca_days` and a certificate of `cert_days` for node a, both
  // from kNow; the bundle holds `extra` too when given.
  TlsMaterial Material(int ca_days, int cert_days, const PemPair* extra = nullptr) {
    PemPair ca = CreateClusterCa("demo", {kNow - absl::Hours(1), ca_days * kDay}).value();
    PemPair a =
        IssueNodeCertificate(ca, {"demo", "a"}, {kNow - absl::Hours(1), cert_days * kDay}).value();
    std::string bundle = ca.cert_pem + (extra == nullptr ? "" : extra->cert_pem);
    absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(bundle, a.cert_pem, a.key_pem, kNow);
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }
};

TEST_F(ExpiryWarningsTest, NoneWhileEverythingHasMoreThan30Days) {
  EXPECT_TRUE(ExpiryWarnings(Material(365, 100), kNow).empty());
}

TEST_F(ExpiryWarningsTest, CertificateAndCaEachSayWhatToDo) {
  TlsMaterial m = Material(20, 10);
  std::vector<ExpiryWarning> w = ExpiryWarnings(m, kNow + absl::Hours(2));
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].what, "certificate");
  EXPECT_EQ(w[0].fingerprint, m.fingerprint);
  EXPECT_EQ(w[0].stage, ExpiryStage::kWithin30Days);
  EXPECT_THAT(w[0].message, HasSubstr("this node's certificate (a, SHA256:"));
  EXPECT_THAT(w[0].message, HasSubstr("expires in 9 days"));
  EXPECT_THAT(w[0].message, HasSubstr("cloudha certs init --force"));
  EXPECT_EQ(w[1].what, "ca");
  EXPECT_THAT(w[1].message, HasSubstr("the CA that issued this node's certificate"));
  EXPECT_THAT(w[1].message, HasSubstr("Rotating the CA"));
}

TEST_F(ExpiryWarningsTest, AnOldCaOfTheBundleIsToBeRetired) {
  PemPair old_ca = CreateClusterCa("demo", {kNow - 300 * kDay, 310 * kDay}).value();
  TlsMaterial m = Material(3650, 365, &old_ca);
  std::vector<ExpiryWarning> w = ExpiryWarnings(m, kNow);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].what, "ca");
  EXPECT_EQ(w[0].fingerprint, m.cas[1].fingerprint);
  EXPECT_THAT(w[0].message, HasSubstr("cloudha certs retire-ca"));
  // Once past its end it is still listed, as expired.
  w = ExpiryWarnings(m, kNow + 12 * kDay);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].stage, ExpiryStage::kExpired);
  EXPECT_THAT(w[0].message, HasSubstr("expired 2 days ago"));
}

TEST_F(ExpiryWarningsTest, AnnouncerWarnsOncePerStage) {
  TlsMaterial m = Material(3650, 40);
  ExpiryAnnouncer announcer;
  absl::Time t = kNow;
  EXPECT_TRUE(announcer.Due(m, t).empty());
  // Hourly checks: the first that finds 30 days or less warns, the next ones
  // do not, until 7 days are left, and once more when it has expired.
  std::vector<absl::Time> warned_at;
  std::vector<ExpiryStage> stages;
  for (; t < kNow + 41 * kDay; t += absl::Hours(1)) {
    for (const ExpiryWarning& w : announcer.Due(m, t)) {
      warned_at.push_back(t);
      stages.push_back(w.stage);
    }
  }
  ASSERT_EQ(stages.size(), 3u);
  EXPECT_EQ(stages[0], ExpiryStage::kWithin30Days);
  EXPECT_EQ(stages[1], ExpiryStage::kWithin7Days);
  EXPECT_EQ(stages[2], ExpiryStage::kExpired);
  absl::Time end = m.not_after;
  EXPECT_LE(end - warned_at[0], 30 * kDay);
  EXPECT_GT(end - warned_at[0], 30 * kDay - absl::Hours(1));
  EXPECT_LE(end - warned_at[1], 7 * kDay);
  EXPECT_GT(end - warned_at[1], 7 * kDay - absl::Hours(1));
  EXPECT_GE(warned_at[2], end);
  EXPECT_LT(warned_at[2], end + absl::Hours(1));
}

TEST_F(ExpiryWarningsTest, AnnouncerStartingLateGivesOnlyTheCurrentStage) {
  TlsMaterial m = Material(3650, 5);
  ExpiryAnnouncer announcer;
  std::vector<ExpiryWarning> w = announcer.Due(m, kNow);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].stage, ExpiryStage::kWithin7Days);
  EXPECT_TRUE(announcer.Due(m, kNow + absl::Hours(1)).empty());
  // A renewed certificate (another fingerprint) is judged afresh.
  TlsMaterial renewed = Material(3650, 6);
  EXPECT_EQ(announcer.Due(renewed, kNow).size(), 1u);
}

}  // namespace
}  // namespace cloudha
