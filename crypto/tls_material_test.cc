#include "crypto/tls_material.h"

#include <cstdlib>
#include <vector>

#include "crypto/certificate_authority.h"
#include "base/secure_file.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const Validity kYear{kNow - absl::Hours(1), absl::Hours(24 * 365)};

class TlsMaterialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
    ASSERT_TRUE(ca.ok());
    ca_ = *ca;
    absl::StatusOr<PemPair> a = IssueNodeCertificate(ca_, {"demo", "a"}, kYear);
    ASSERT_TRUE(a.ok());
    a_ = *a;
  }

  PemPair ca_;
  PemPair a_;
};

TEST_F(TlsMaterialTest, AcceptsMatchingMaterial) {
  absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(ca_.cert_pem, a_.cert_pem, a_.key_pem, kNow);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->identity, (NodeIdentity{"demo", "a"}));
}

TEST_F(TlsMaterialTest, RefusesKeyOfAnotherCertificate) {
  absl::StatusOr<PemPair> b = IssueNodeCertificate(ca_, {"demo", "b"}, kYear);
  ASSERT_TRUE(b.ok());
  absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(ca_.cert_pem, a_.cert_pem, b->key_pem, kNow);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("does not belong"), absl::string_view::npos)
      << m.status();
}

TEST_F(TlsMaterialTest, RefusesCertificateOfAnotherCa) {
  absl::StatusOr<PemPair> other = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(other.ok());
  absl::StatusOr<TlsMaterial> m =
      CheckTlsMaterial(other->cert_pem, a_.cert_pem, a_.key_pem, kNow);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("not valid under the CA"), absl::string_view::npos)
      << m.status();
}

TEST_F(TlsMaterialTest, RefusesExpiredCertificate) {
  absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(ca_.cert_pem, a_.cert_pem, a_.key_pem,
                                                   kNow + absl::Hours(24 * 400));
  EXPECT_NE(m.status().message().find("expired"), absl::string_view::npos) << m.status();
}

TEST_F(TlsMaterialTest, RefusesGarbage) {
  EXPECT_NE(CheckTlsMaterial("junk", a_.cert_pem, a_.key_pem, kNow)
                .status()
                .message()
                .find("CA certificate"),
            absl::string_view::npos);
  EXPECT_NE(CheckTlsMaterial(ca_.cert_pem, a_.key_pem, a_.key_pem, kNow)
                .status()
                .message()
                .find("not a PEM certificate"),
            absl::string_view::npos);
  EXPECT_NE(CheckTlsMaterial(ca_.cert_pem, a_.cert_pem, a_.cert_pem, kNow)
                .status()
                .message()
                .find("private key"),
            absl::string_view::npos);
}

TEST_F(TlsMaterialTest, LoadNamesTheFileAtFault) {
  std::string dir = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  ASSERT_TRUE(WriteFileAtomically(dir + "/ca.crt", ca_.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.crt", a_.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.key", ca_.key_pem, 0600, Overwrite::kReplace).ok());
  absl::StatusOr<TlsMaterial> m =
      LoadTlsMaterial({dir + "/ca.crt", dir + "/a.crt", dir + "/a.key"}, kNow);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message().substr(0, dir.size() + 6), dir + "/a.key");
  absl::StatusOr<TlsMaterial> missing =
      LoadTlsMaterial({dir + "/ca.crt", dir + "/missing.crt", dir + "/a.key"}, kNow);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.crt"), absl::string_view::npos);
}

// A world-readable key was accepted without a word.
TEST_F(TlsMaterialTest, RefusesAKeyOtherUsersCanRead) {
  std::string dir = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  ASSERT_TRUE(WriteFileAtomically(dir + "/ca.crt", ca_.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.crt", a_.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.key", a_.key_pem, 0644, Overwrite::kReplace).ok());
  absl::StatusOr<TlsMaterial> m =
      LoadTlsMaterial({dir + "/ca.crt", dir + "/a.crt", dir + "/a.key"}, kNow);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(m.status().message().find("accessible to other users (mode 0644)"),
            absl::string_view::npos)
      << m.status();
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.key", a_.key_pem, 0640, Overwrite::kReplace).ok());
  EXPECT_TRUE(LoadTlsMaterial({dir + "/ca.crt", dir + "/a.crt", dir + "/a.key"}, kNow).ok());
}

// --- Trust bundles: several CAs while one replaces another.

TEST_F(TlsMaterialTest, ABundleTrustsEachOfItsCasAndNamesTheIssuer) {
  absl::StatusOr<PemPair> next = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(next.ok());
  absl::StatusOr<PemPair> b = IssueNodeCertificate(*next, {"demo", "b"}, kYear);
  ASSERT_TRUE(b.ok());
  // Comments and blank lines around the blocks are allowed (and dropped).
  const std::string bundle =
      "# old CA\n" + ca_.cert_pem + "\n# new CA, since 2027-01\n" + next->cert_pem;
  absl::StatusOr<TlsMaterial> old_cert = CheckTlsMaterial(bundle, a_.cert_pem, a_.key_pem, kNow);
  ASSERT_TRUE(old_cert.ok()) << old_cert.status();
  ASSERT_EQ(old_cert->cas.size(), 2u);
  EXPECT_EQ(old_cert->issuer, 0u);
  EXPECT_EQ(old_cert->cas[0].name, "cloudha CA demo");
  EXPECT_EQ(old_cert->cas[0].fingerprint, *CertificateFingerprint(ca_.cert_pem));
  EXPECT_EQ(old_cert->cas[1].fingerprint, *CertificateFingerprint(next->cert_pem));
  EXPECT_NE(old_cert->cas[0].fingerprint, old_cert->cas[1].fingerprint);
  EXPECT_EQ(old_cert->cas[1].not_after, kYear.not_before + kYear.lifetime);
  EXPECT_EQ(old_cert->ca_pem, ca_.cert_pem + next->cert_pem);
  EXPECT_EQ(old_cert->fingerprint, *CertificateFingerprint(a_.cert_pem));
  absl::StatusOr<TlsMaterial> new_cert = CheckTlsMaterial(bundle, b->cert_pem, b->key_pem, kNow);
  ASSERT_TRUE(new_cert.ok()) << new_cert.status();
  EXPECT_EQ(new_cert->issuer, 1u);
}

TEST_F(TlsMaterialTest, ACertificateOfNoCaOfTheBundleIsRefused) {
  absl::StatusOr<PemPair> second = CreateClusterCa("demo", kYear);
  absl::StatusOr<PemPair> third = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(second.ok() && third.ok());
  absl::StatusOr<TlsMaterial> m =
      CheckTlsMaterial(second->cert_pem + third->cert_pem, a_.cert_pem, a_.key_pem, kNow);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("not valid under the CA certificate (nor any of the 2 in "
                                      "the bundle)"),
            absl::string_view::npos)
      << m.status();
}

TEST_F(TlsMaterialTest, ABundleHoldsCaCertificatesOnly) {
  struct Case {
    std::string bundle;
    std::string says;
  };
  absl::StatusOr<PemPair> other = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(other.ok());
  std::string cut = other->cert_pem.substr(0, other->cert_pem.size() / 2);
  for (const Case& c : std::vector<Case>{
           {ca_.cert_pem + ca_.key_pem, "entry 2 is a private key"},
           {ca_.cert_pem + a_.cert_pem, "entry 2 (\"a.demo\", SHA256:"},
           {a_.cert_pem, "is not a CA certificate"},
           {ca_.cert_pem + other->cert_pem + ca_.cert_pem, "entries 1 and 3 are the same CA"},
           {ca_.cert_pem + cut, "entry 2 is not a valid PEM block"},
           {ca_.cert_pem + "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "entry 2 is a PEM \"PUBLIC KEY\" block"},
           {"", "not a PEM certificate"},
       }) {
    absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(c.bundle, a_.cert_pem, a_.key_pem, kNow);
    ASSERT_FALSE(m.ok()) << c.says;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
    EXPECT_EQ(m.status().message().substr(0, 16), "CA certificate: ") << m.status();
    EXPECT_NE(m.status().message().find(c.says), absl::string_view::npos)
        << m.status() << "\nwanted: " << c.says;
  }
}

TEST_F(TlsMaterialTest, AnExpiredCaBesideTheIssuerIsAcceptedAnExpiredIssuerIsNot) {
  absl::StatusOr<PemPair> old_ca =
      CreateClusterCa("demo", {kNow - absl::Hours(24 * 400), absl::Hours(24 * 365)});
  ASSERT_TRUE(old_ca.ok());
  absl::StatusOr<TlsMaterial> m =
      CheckTlsMaterial(old_ca->cert_pem + ca_.cert_pem, a_.cert_pem, a_.key_pem, kNow);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->issuer, 1u);
  EXPECT_LT(m->cas[0].not_after, kNow);
  // A certificate that outlives its CA (not made by cloudha, which caps it).
  absl::StatusOr<PemPair> short_ca =
      CreateClusterCa("demo", {kNow - absl::Hours(48), absl::Hours(47)});
  ASSERT_TRUE(short_ca.ok());
  absl::StatusOr<PemPair> b = IssueNodeCertificate(*short_ca, {"demo", "b"},
                                                   {kNow - absl::Hours(48), absl::Hours(47)});
  ASSERT_TRUE(b.ok());
  absl::StatusOr<TlsMaterial> expired =
      CheckTlsMaterial(short_ca->cert_pem, b->cert_pem, b->key_pem, kNow);
  EXPECT_NE(expired.status().message().find("expired"), absl::string_view::npos)
      << expired.status();
}

TEST_F(TlsMaterialTest, LoadNamesTheCaFileForABadBundle) {
  std::string dir = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
  ASSERT_TRUE(WriteFileAtomically(dir + "/bundle.crt", ca_.cert_pem + ca_.key_pem, 0644,
                                  Overwrite::kReplace)
                  .ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.crt", a_.cert_pem, 0644, Overwrite::kReplace).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.key", a_.key_pem, 0600, Overwrite::kReplace).ok());
  absl::StatusOr<TlsMaterial> m =
      LoadTlsMaterial({dir + "/bundle.crt", dir + "/a.crt", dir + "/a.key"}, kNow);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message().substr(0, dir.size() + 12), dir + "/bundle.crt:")
      << m.status();
  EXPECT_NE(m.status().message().find("is a private key"), absl::string_view::npos);
}

}  // namespace
}  // namespace cloudha
