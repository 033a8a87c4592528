// Real gRPC over loopback: mutual TLS with ReloadableCredentials on both
// ends, the server's name checked by the client, and new material reaching
// new handshakes while an established stream carries on.
#include "crypto/reloadable_credentials.h"

#include <chrono>
#include <cstdlib>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cloudha/v1/peer.grpc.pb.h"
#include "crypto/certificate_authority.h"
#include "crypto/tls_material.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

const char kPeerHeader[] = "cloudha-test-peer";

// Echoes every message of every stream; its initial metadata names the
// client's certificate (identity and fingerprint) as the server saw it.
class EchoService : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    class Echo : public grpc::ServerGenericBidiReactor {
     public:
      explicit Echo(grpc::GenericCallbackServerContext* context) {
        std::string seen = "none";
        absl::StatusOr<NodeIdentity> id = PeerIdentityFromAuthContext(*context->auth_context());
        std::vector<grpc::string_ref> pems =
            context->auth_context()->FindPropertyValues("x509_pem_cert");
        if (id.ok() && !pems.empty()) {
          seen = absl::StrCat(
              NodeUri(*id), " ",
              CertificateFingerprint(std::string(pems[0].data(), pems[0].size())).value_or("?"));
        }
        context->AddInitialMetadata(kPeerHeader, seen);
        StartRead(&buffer_);
      }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartWrite(&buffer_);
      }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::CANCELLED);
          return;
        }
        StartRead(&buffer_);
      }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer buffer_;
    };
    return new Echo(context);
  }
};

// One open Hello stream to the echo server.
struct Stream {
  grpc::ClientContext context;
  std::unique_ptr<v1::PeerService::Stub> stub;
  std::unique_ptr<grpc::ClientReaderWriter<v1::Hello, v1::Hello>> rw;

  // One message there and back.
  bool RoundTrip(uint64_t sequence) {
    v1::Hello hello;
    hello.set_sequence(sequence);
    v1::Hello echo;
    return rw->Write(hello) && rw->Read(&echo) && echo.sequence() == sequence;
  }
  std::string Peer() {
    auto it = context.GetServerInitialMetadata().find(kPeerHeader);
    return it == context.GetServerInitialMetadata().end()
               ? ""
               : std::string(it->second.data(), it->second.size());
  }
};

class ReloadableCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/reloadable_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    now_ = absl::Now();
    ca1_ = NewCa();
    ca2_ = NewCa();
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  PemPair NewCa() {
    return CreateClusterCa("demo", {now_ - absl::Hours(1), absl::Hours(48)}).value();
  }

  PemPair Issue(const PemPair& ca, const std::string& node) {
    return IssueNodeCertificate(ca, {"demo", node}, {now_ - absl::Hours(1), absl::Hours(24)})
        .value();
  }

  TlsMaterial Material(const std::string& bundle, const PemPair& node) {
    absl::StatusOr<TlsMaterial> m = CheckTlsMaterial(bundle, node.cert_pem, node.key_pem, now_);
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }

  std::unique_ptr<ReloadableCredentials> Credentials(const std::string& name,
                                                     const TlsMaterial& material) {
    absl::StatusOr<std::unique_ptr<ReloadableCredentials>> c =
        ReloadableCredentials::Create(absl::StrCat(dir_, "/", name), material);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Node a's server, with `credentials`.
  void StartServer(ReloadableCredentials* credentials) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials->server_credentials(), &port_);
    builder.RegisterCallbackGenericService(&echo_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  // A stream on a channel (and connection) of its own, expecting node
  // `expect` to answer; null when the call does not go through.
  std::unique_ptr<Stream> Open(const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                               const std::string& expect = "a") {
    grpc::ChannelArguments args;
    SetExpectedPeer({"demo", expect}, &args);
    args.SetString("cloudha.test.channel", absl::StrCat(++channels_));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), credentials, args);
    auto stream = std::make_unique<Stream>();
    stream->stub = v1::PeerService::NewStub(channel);
    stream->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stream->context.set_wait_for_ready(false);
    stream->rw = stream->stub->Hello(&stream->context);
    if (!stream->RoundTrip(1)) {
      stream->context.TryCancel();
      stream->rw->Finish().error_code();
      return nullptr;
    }
    return stream;
  }

  // Whether a new connection gets through, polled until it is `want`
  // (gRPC rereads installed material every kRefreshInterval).
  bool EventuallyConnects(const std::shared_ptr<grpc::ChannelCredentials>& credentials, bool want) {
    absl::Time deadline = absl::Now() + 4 * ReloadableCredentials::kRefreshInterval;
    while (true) {
      bool connects = Open(credentials) != nullptr;
      if (connects == want) return true;
      if (absl::Now() > deadline) return false;
    }
  }

  absl::Time now_;
  std::string dir_;
  PemPair ca1_;
  PemPair ca2_;
  EchoService echo_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int channels_ = 0;
};

TEST_F(ReloadableCredentialsTest, MutualTlsBothWays) {
  PemPair b = Issue(ca1_, "b");
  auto a = Credentials("a", Material(ca1_.cert_pem, Issue(ca1_, "a")));
  auto client = Credentials("b", Material(ca1_.cert_pem, b));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(client, nullptr);
  StartServer(a.get());
  std::unique_ptr<Stream> stream = Open(client->channel_credentials());
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->Peer(), absl::StrCat("cloudha://demo/b ", *CertificateFingerprint(b.cert_pem)));
  EXPECT_TRUE(stream->RoundTrip(2));
}

TEST_F(ReloadableCredentialsTest, TheClientChecksTheServersName) {
  auto a = Credentials("a", Material(ca1_.cert_pem, Issue(ca1_, "a")));
  auto client = Credentials("b", Material(ca1_.cert_pem, Issue(ca1_, "b")));
  StartServer(a.get());
  EXPECT_NE(Open(client->channel_credentials(), "a"), nullptr);
  // Dialing "c" and finding a is refused by the client.
  EXPECT_EQ(Open(client->channel_credentials(), "c"), nullptr);
}

TEST_F(ReloadableCredentialsTest, TheServerRequiresAClientCertificateOfItsCas) {
  auto a = Credentials("a", Material(ca1_.cert_pem, Issue(ca1_, "a")));
  StartServer(a.get());
  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = ca1_.cert_pem;
  EXPECT_EQ(Open(grpc::SslCredentials(anonymous)), nullptr);
  PemPair stranger = Issue(ca2_, "b");
  grpc::SslCredentialsOptions other_ca;
  other_ca.pem_root_certs = ca1_.cert_pem;
  other_ca.pem_cert_chain = stranger.cert_pem;
  other_ca.pem_private_key = stranger.key_pem;
  EXPECT_EQ(Open(grpc::SslCredentials(other_ca)), nullptr);
  EXPECT_NE(Open(PeerChannelCredentials(Material(ca1_.cert_pem, Issue(ca1_, "b")))), nullptr);
}

// A server rotated from CA 1 to CA 2 (both trusted, then a certificate of
// CA 2, then CA 1 retired): each step reaches new handshakes, and a stream
// opened before the first step keeps going through all of them.
TEST_F(ReloadableCredentialsTest, NewMaterialReachesNewHandshakesOnly) {
  auto a = Credentials("a", Material(ca1_.cert_pem, Issue(ca1_, "a")));
  StartServer(a.get());
  const std::string both = ca1_.cert_pem + ca2_.cert_pem;
  auto old_client = PeerChannelCredentials(Material(ca1_.cert_pem, Issue(ca1_, "b")));
  auto bundle_client = PeerChannelCredentials(Material(both, Issue(ca1_, "b")));
  auto new_client = PeerChannelCredentials(Material(both, Issue(ca2_, "b")));
  std::unique_ptr<Stream> established = Open(old_client);
  ASSERT_NE(established, nullptr);
  // The server does not trust CA 2 yet.
  EXPECT_EQ(Open(new_client), nullptr);

  // 1. Both CAs trusted.
  ASSERT_TRUE(a->Install(Material(both, Issue(ca1_, "a"))).ok());
  EXPECT_TRUE(EventuallyConnects(new_client, true));
  EXPECT_NE(Open(old_client), nullptr);
  EXPECT_TRUE(established->RoundTrip(2));

  // 2. A certificate of CA 2: a client that trusts only CA 1 cannot verify
  // the server any more; one with the bundle can.
  ASSERT_TRUE(a->Install(Material(both, Issue(ca2_, "a"))).ok());
  EXPECT_TRUE(EventuallyConnects(old_client, false));
  EXPECT_NE(Open(bundle_client), nullptr);
  EXPECT_NE(Open(new_client), nullptr);
  EXPECT_TRUE(established->RoundTrip(3));

  // 3. CA 1 retired: a client certificate of CA 1 is refused.
  ASSERT_TRUE(a->Install(Material(ca2_.cert_pem, Issue(ca2_, "a"))).ok());
  EXPECT_TRUE(EventuallyConnects(bundle_client, false));
  EXPECT_NE(Open(new_client), nullptr);
  // What was established under CA 1 is not cut.
  EXPECT_TRUE(established->RoundTrip(4));
}

// The client side reloads too: new connections present the new certificate.
TEST_F(ReloadableCredentialsTest, AClientPresentsItsNewCertificateOnNewConnections) {
  const std::string both = ca1_.cert_pem + ca2_.cert_pem;
  auto a = Credentials("a", Material(both, Issue(ca1_, "a")));
  StartServer(a.get());
  PemPair first = Issue(ca1_, "b");
  PemPair second = Issue(ca2_, "b");
  auto b = Credentials("b", Material(both, first));
  std::unique_ptr<Stream> established = Open(b->channel_credentials());
  ASSERT_NE(established, nullptr);
  const std::string first_seen =
      absl::StrCat("cloudha://demo/b ", *CertificateFingerprint(first.cert_pem));
  const std::string second_seen =
      absl::StrCat("cloudha://demo/b ", *CertificateFingerprint(second.cert_pem));
  EXPECT_EQ(established->Peer(), first_seen);
  ASSERT_TRUE(b->Install(Material(both, second)).ok());
  absl::Time deadline = absl::Now() + 4 * ReloadableCredentials::kRefreshInterval;
  std::string seen;
  while (absl::Now() < deadline && seen != second_seen) {
    std::unique_ptr<Stream> fresh = Open(b->channel_credentials());
    ASSERT_NE(fresh, nullptr);
    seen = fresh->Peer();
  }
  EXPECT_EQ(seen, second_seen);
  EXPECT_TRUE(established->RoundTrip(2));
}

}  // namespace
}  // namespace cloudha
