#include "agent/peer_verifier.h"

#include "google/protobuf/text_format.h"
#include "agent/epoch_limit.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

v1::AgentConfig Config() {
  v1::AgentConfig c;
  google::protobuf::TextFormat::ParseFromString(R"(
    cluster { name: "demo" group_id: 7 }
    node { id: "a" }
    peers { id: "b" addresses: "127.0.0.1:7802" })",
                                                &c);
  return c;
}

v1::Hello HelloFrom(const std::string& node, const std::string& cluster, uint32_t group) {
  v1::Hello h;
  h.set_node_id(node);
  h.set_cluster_name(cluster);
  h.set_group_id(group);
  return h;
}

TEST(PeerVerifierTest, Certificate) {
  PeerVerifier v(Config());
  EXPECT_TRUE(v.CheckCertificate({"demo", "b"}).ok());
  EXPECT_EQ(v.CheckCertificate({"other", "b"}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(v.CheckCertificate({"demo", "c"}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(v.CheckCertificate({"demo", "a"}).code(), absl::StatusCode::kPermissionDenied);
}

TEST(PeerVerifierTest, Hello) {
  PeerVerifier v(Config());
  NodeIdentity b{"demo", "b"};
  EXPECT_TRUE(v.CheckHello(b, HelloFrom("b", "demo", 7)).ok());
  EXPECT_EQ(v.CheckHello(b, HelloFrom("c", "demo", 7)).code(),
            absl::StatusCode::kPermissionDenied);
  absl::Status cluster = v.CheckHello(b, HelloFrom("b", "prod", 7));
  EXPECT_EQ(cluster.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cluster.message(), "hello is for cluster \"prod\", this is cluster \"demo\"");
  absl::Status group = v.CheckHello(b, HelloFrom("b", "demo", 8));
  EXPECT_EQ(group.message(), "hello is for group_id 8, this cluster's is 7");
}

// One hello with epoch 2^64-1 once made a node promote at epoch 0.
TEST(PeerVerifierTest, AHelloAboveTheEpochCeilingIsRefused) {
  PeerVerifier v(Config());
  NodeIdentity b{"demo", "b"};
  v1::Hello hello = HelloFrom("b", "demo", 7);
  hello.set_epoch(kMaxEpoch);
  EXPECT_TRUE(v.CheckHello(b, hello).ok());
  hello.set_epoch(~uint64_t{0});
  absl::Status s = v.CheckHello(b, hello);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("above the ceiling"), std::string::npos) << s;
  hello.set_epoch(1);
  hello.set_primary_epoch(kMaxEpoch + 1);
  EXPECT_EQ(v.CheckHello(b, hello).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cloudha
