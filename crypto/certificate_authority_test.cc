#include "crypto/certificate_authority.h"

#include "crypto/node_identity.h"
#include "crypto/tls_material.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const Validity kYear{kNow - absl::Hours(1), absl::Hours(24 * 365)};

TEST(CertificateAuthorityTest, NodeCertificateNamesNodeAndCluster) {
  absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(ca.ok()) << ca.status();
  absl::StatusOr<PemPair> node = IssueNodeCertificate(*ca, {"demo", "a"}, kYear);
  ASSERT_TRUE(node.ok()) << node.status();
  absl::StatusOr<NodeIdentity> id = IdentityFromCertificatePem(node->cert_pem);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->cluster, "demo");
  EXPECT_EQ(id->node, "a");
  absl::StatusOr<TlsMaterial> material =
      CheckTlsMaterial(ca->cert_pem, node->cert_pem, node->key_pem, kNow);
  ASSERT_TRUE(material.ok()) << material.status();
  EXPECT_EQ(material->not_after, absl::FromUnixSeconds(absl::ToUnixSeconds(
                                     kYear.not_before + kYear.lifetime)));
}

TEST(CertificateAuthorityTest, CaCertificateIsNotANodeIdentity) {
  absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(ca.ok());
  EXPECT_FALSE(IdentityFromCertificatePem(ca->cert_pem).ok());
}

TEST(CertificateAuthorityTest, RefusesBadNames) {
  EXPECT_EQ(CreateClusterCa("Demo!", kYear).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(ca.ok());
  EXPECT_FALSE(IssueNodeCertificate(*ca, {"demo", "-a"}, kYear).ok());
  EXPECT_FALSE(IssueNodeCertificate(*ca, {"demo", std::string(64, 'a')}, kYear).ok());
}

TEST(CertificateAuthorityTest, RefusesACaKeyOfAnotherCa) {
  absl::StatusOr<PemPair> one = CreateClusterCa("demo", kYear);
  absl::StatusOr<PemPair> two = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(one.ok() && two.ok());
  PemPair mixed{one->cert_pem, two->key_pem};
  EXPECT_EQ(IssueNodeCertificate(mixed, {"demo", "a"}, kYear).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CertificateAuthorityTest, ClusterOfCa) {
  absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(*ClusterOfCa(ca->cert_pem), "demo");
  absl::StatusOr<PemPair> node = IssueNodeCertificate(*ca, {"demo", "a"}, kYear);
  ASSERT_TRUE(node.ok());
  EXPECT_FALSE(ClusterOfCa(node->cert_pem).ok());
}

TEST(CertificateAuthorityTest, NodeCertificateNeverOutlivesTheCa) {
  absl::StatusOr<PemPair> ca = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(ca.ok());
  Validity ten_years{kYear.not_before, absl::Hours(24 * 3650)};
  absl::StatusOr<PemPair> node = IssueNodeCertificate(*ca, {"demo", "a"}, ten_years);
  ASSERT_TRUE(node.ok());
  absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(ca->cert_pem, node->cert_pem, node->key_pem, kNow);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->not_after, kYear.not_before + kYear.lifetime);
}

TEST(CertificateAuthorityTest, SignedByTellsTheIssuingCa) {
  absl::StatusOr<PemPair> one = CreateClusterCa("demo", kYear);
  absl::StatusOr<PemPair> two = CreateClusterCa("demo", kYear);
  ASSERT_TRUE(one.ok() && two.ok());
  absl::StatusOr<PemPair> node = IssueNodeCertificate(*two, {"demo", "a"}, kYear);
  ASSERT_TRUE(node.ok());
  EXPECT_TRUE(*SignedBy(node->cert_pem, two->cert_pem));
  EXPECT_FALSE(*SignedBy(node->cert_pem, one->cert_pem));
  EXPECT_TRUE(*SignedBy(one->cert_pem, one->cert_pem));
  EXPECT_FALSE(SignedBy("junk", one->cert_pem).ok());
}

TEST(NodeIdentityTest, UriRoundTrip) {
  NodeIdentity id{"prod-eu", "fw-1"};
  EXPECT_EQ(NodeUri(id), "cloudha://prod-eu/fw-1");
  EXPECT_EQ(NodeDnsName(id), "fw-1.prod-eu.cloudha");
  absl::StatusOr<NodeIdentity> parsed = ParseNodeUri(NodeUri(id));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(ParseNodeUri("https://prod/fw").ok());
  EXPECT_FALSE(ParseNodeUri("cloudha://prod").ok());
  EXPECT_FALSE(ParseNodeUri("cloudha://prod/FW").ok());
}

}  // namespace
}  // namespace cloudha
