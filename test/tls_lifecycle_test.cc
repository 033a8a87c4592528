// Certificate lifecycle on a running pair over loopback: expiry shown and
// warned of, new TLS files taken without a restart (polled, or at SIGHUP),
// and bad ones refused while the material in use stays.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "base/secure_file.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "crypto/certificate_authority.h"
#include "crypto/tls_material.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class TlsLifecycleTest : public ::testing::Test {
 protected:
  // a (primary) and b, each with a CA file of its own (NODE-ca.crt), as on
  // two machines.
  void StartPair() {
    for (const auto& [node, priority] : {std::pair<std::string, int>{"a", 200}, {"b", 100}}) {
      TestCluster::Settings settings;
      settings.priority = priority;
      settings.election = "hello_holddown_s: 1 failover_hold_s: 0";
      std::string config = absl::StrReplaceAll(
          cluster_.Config(node, settings),
          {{"ca_file: \"ca.crt\"", absl::StrCat("ca_file: \"", node, "-ca.crt\"")}});
      Install(node + "-ca.crt", cluster_.ca().cert_pem, 0644);
      cluster_.WriteConfig(node, config);
    }
    ASSERT_NE(cluster_.Start("a"), nullptr);
    ASSERT_NE(cluster_.Start("b"), nullptr);
    ASSERT_TRUE(cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
      return s.role() == v1::PRIMARY;
    })) << Logs(cluster_.agent("a"));
    ASSERT_TRUE(cluster_.WaitFor("b", [](const v1::StatusResponse& s) {
      return s.role() == v1::SECONDARY && s.config().in_sync();
    })) << Logs(cluster_.agent("b"));
  }

  // As an operator's `install -m MODE SRC DIR/NAME`.
  void Install(const std::string& name, const std::string& content, int mode) {
    ASSERT_TRUE(
        WriteFileAtomically(cluster_.dir() + "/" + name, content, mode, Overwrite::kReplace).ok());
  }
  std::string Read(const std::string& name) {
    return ReadSmallFile(cluster_.dir() + "/" + name).value_or("");
  }

  bool WaitTls(const std::string& node, const std::function<bool(const v1::TlsStatus&)>& done) {
    return cluster_.WaitFor(
        node, [&](const v1::StatusResponse& s) { return done(s.tls()); }, absl::Seconds(20));
  }

  // A fresh TLS connection to `node`'s peer port, presenting `client` and
  // trusting `trust`: the fingerprint of the certificate the node
  // presented, or why the handshake failed.
  absl::StatusOr<std::string> Handshake(const std::string& node, const PemPair& client,
                                        const std::string& trust) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = trust;
    options.pem_cert_chain = client.cert_pem;
    options.pem_private_key = client.key_pem;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(absl::StrCat(node, ".demo.cloudha"));
    args.SetString("cloudha.test.channel", absl::StrCat(++channels_));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::PeerService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", cluster_.port(node)), grpc::SslCredentials(options), args));
    grpc::ClientContext context;
    context.AddMetadata("cloudha-group-id", "7");
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ConfigQueryResponse response;
    grpc::Status s = stub->QueryConfig(&context, v1::ConfigQueryRequest(), &response);
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      return absl::UnavailableError(s.error_message());
    }
    std::vector<grpc::string_ref> pems =
        context.auth_context()->FindPropertyValues("x509_pem_cert");
    if (pems.empty()) return absl::UnavailableError("no server certificate");
    return CertificateFingerprint(absl::string_view(pems[0].data(), pems[0].size()));
  }

  PemPair Pair(const std::string& name) { return {Read(name + ".crt"), Read(name + ".key")}; }

  TestCluster cluster_{{"a", "b"}};
  int channels_ = 0;
};

TEST_F(TlsLifecycleTest, StatusShowsExpiryAndWarns) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  absl::StatusOr<v1::StatusResponse> s = cluster_.Status("a");
  ASSERT_TRUE(s.ok());
  const v1::TlsStatus& tls = s->tls();
  EXPECT_EQ(tls.certificate_fingerprint(), *CertificateFingerprint(Read("a.crt")));
  EXPECT_GT(tls.certificate_not_after_s(), absl::ToUnixSeconds(absl::Now()));
  ASSERT_EQ(tls.cas_size(), 1);
  EXPECT_TRUE(tls.cas(0).issued_this_node());
  EXPECT_EQ(tls.ca_file(), cluster_.dir() + "/a-ca.crt");
  // The test cluster's certificates last a day: both are warned of.
  ASSERT_EQ(tls.warnings_size(), 2);
  EXPECT_THAT(tls.warnings(0), HasSubstr("this node's certificate (a, "));
  CommandResult text = cluster_.Cli({"status", "--socket", cluster_.socket("a")});
  EXPECT_THAT(text.out, HasSubstr(absl::StrCat("tls certificate ", tls.certificate_fingerprint(),
                                               " expires ")));
  EXPECT_THAT(text.out, HasSubstr("tls trusts 1 CA: "));
  EXPECT_THAT(text.out, HasSubstr("WARNING: this node's certificate (a, "));
  EXPECT_THAT(text.out, HasSubstr("WARNING: the CA that issued this node's certificate"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr(" W event=certificate_expiring"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr(" W event=ca_expiring"));
  CommandResult events = cluster_.Cli({"events", "--socket", cluster_.socket("a")});
  EXPECT_THAT(events.out, HasSubstr("this node's certificate (a, "));
  CommandResult json = cluster_.Cli({"status", "--socket", cluster_.socket("a"), "--json"});
  EXPECT_THAT(json.out, HasSubstr("\"certificate_not_after_s\""));
}

TEST_F(TlsLifecycleTest, NewFilesAreTakenWithoutARestartAndBadOnesRefused) {
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const std::string ca = cluster_.ca().cert_pem;
  const PemPair b = Pair("b");
  const std::string first = *CertificateFingerprint(Read("a.crt"));
  EXPECT_EQ(Handshake("a", b, ca).value_or("refused"), first);

  // Renewed: the certificate, then the key, copied one after the other.
  cluster_.WriteCertificate(cluster_.ca(), "demo", "a", "a");
  const std::string second = *CertificateFingerprint(Read("a.crt"));
  ASSERT_TRUE(WaitTls("a", [&](const v1::TlsStatus& t) {
    return t.certificate_fingerprint() == second && t.reloads() == 1;
  })) << Logs(cluster_.agent("a"));
  EXPECT_EQ(Handshake("a", b, ca).value_or("refused"), second);
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("event=tls_reloaded"));

  // A key that is not the certificate's: refused, the material stays.
  const std::string good_key = Read("a.key");
  Install("a.key", b.key_pem, 0600);
  ASSERT_TRUE(WaitTls("a", [](const v1::TlsStatus& t) {
    return t.last_error().find("does not belong to the certificate") != std::string::npos;
  })) << Logs(cluster_.agent("a"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr(" E event=tls_refused"));
  EXPECT_EQ(Handshake("a", b, ca).value_or("refused"), second);
  CommandResult text = cluster_.Cli({"status", "--socket", cluster_.socket("a")});
  EXPECT_THAT(text.out, HasSubstr("tls: the files were refused, the material in use stays"));
  // A certificate for another node: refused.
  cluster_.WriteCertificate(cluster_.ca(), "demo", "c", "a");
  ASSERT_TRUE(WaitTls("a", [](const v1::TlsStatus& t) {
    return t.last_error().find("is now for node \"c\"") != std::string::npos;
  })) << Logs(cluster_.agent("a"));
  EXPECT_EQ(Handshake("a", b, ca).value_or("refused"), second);

  // SIGHUP takes new files at once, and does not stop the agent.
  cluster_.WriteCertificate(cluster_.ca(), "demo", "a", "a");
  const std::string third = *CertificateFingerprint(Read("a.crt"));
  cluster_.Kill("a", SIGHUP);
  ASSERT_TRUE(WaitTls("a", [&](const v1::TlsStatus& t) {
    return t.certificate_fingerprint() == third && t.reloads() == 2 && t.last_error().empty();
  })) << Logs(cluster_.agent("a"));
  EXPECT_THAT(Logs(cluster_.agent("a")), HasSubstr("event=tls_reload_requested signal=Hangup"));
  EXPECT_EQ(Handshake("a", b, ca).value_or("refused"), third);
  cluster_.Kill("a", SIGHUP);
  ASSERT_TRUE(WaitForLog(cluster_.agent("a"), "event=tls_unchanged"));
  EXPECT_TRUE(cluster_.agent("a")->Running());

  // Through all of it the pair never lost each other.
  EXPECT_TRUE(cluster_.WaitForPeerState("b", "a", v1::PeerStatus::UP));
  EXPECT_THAT(Logs(cluster_.agent("a")), Not(HasSubstr("event=peer_down")));
  EXPECT_THAT(Logs(cluster_.agent("b")), Not(HasSubstr("event=peer_down")));
}

}  // namespace
}  // namespace cloudha
