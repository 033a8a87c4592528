#include "crypto/tls_material.h"

#include <cstdlib>

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

}  // namespace
}  // namespace cloudha
