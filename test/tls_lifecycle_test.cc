// Certificate lifecycle on a running pair over loopback: expiry shown and
// warned of, new TLS files taken without a restart (polled, or at SIGHUP),
// bad ones refused while the material in use stays, and a CA rotation with
// `cloudha certs` (trust both, reissue, retire the old) while hellos and
// config sync go on, without a peer ever lost.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

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
#include "test/config_client.h"
#include "test/test_cluster.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Polls both nodes' status until stopped: the longest time either saw
// without a hello from its peer, and whether either ever saw it DOWN.
class HelloGapSampler {
 public:
  explicit HelloGapSampler(TestCluster* cluster) : cluster_(cluster) {
    thread_ = std::thread([this] { Run(); });
  }
  ~HelloGapSampler() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t longest_gap_ms(const std::string& node) {
    absl::MutexLock lock(&mu_);
    return longest_[node];
  }
  std::string down() {
    absl::MutexLock lock(&mu_);
    return down_;
  }
  int samples() {
    absl::MutexLock lock(&mu_);
    return samples_;
  }

 private:
  void Run() {
    while (!stop_) {
      for (const char* node : {"a", "b"}) {
        absl::StatusOr<v1::StatusResponse> s = cluster_->Status(node);
        if (!s.ok() || s->peers_size() != 1) continue;
        absl::MutexLock lock(&mu_);
        ++samples_;
        longest_[node] = std::max(longest_[node], s->peers(0).last_hello_age_ms());
        if (s->peers(0).state() != v1::PeerStatus::UP && down_.empty()) {
          down_ = absl::StrCat(node, " saw ", s->peers(0).id(), " ",
                               v1::PeerStatus::State_Name(s->peers(0).state()));
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  TestCluster* cluster_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::map<std::string, int64_t> longest_ ABSL_GUARDED_BY(mu_);
  std::string down_ ABSL_GUARDED_BY(mu_);
  int samples_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// Writes to the primary's config store every 50 ms until stopped.
class ConfigWriter {
 public:
  explicit ConfigWriter(const std::string& socket) : client_(socket) {
    thread_ = std::thread([this] {
      while (!stop_) {
        absl::StatusOr<uint64_t> r = client_.Put("rotation.counter", absl::StrCat(written_ + 1));
        if (r.ok()) {
          ++written_;
        } else {
          ++failed_;
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
    });
  }
  ~ConfigWriter() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int written() const { return written_; }
  int failed() const { return failed_; }

 private:
  ConfigClient client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> written_{0};
  std::atomic<int> failed_{0};
  std::thread thread_;
};

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

// The procedure of docs/security.md ("Rotating the CA"), with the real
// commands, one node at a time, while the pair exchanges hellos and the
// primary's config writes replicate.
TEST_F(TlsLifecycleTest, CaRotationWithoutDowntime) {
  // The operator's folder, as `cloudha certs init` leaves it.
  ASSERT_TRUE(MakeDirectories(cluster_.dir() + "/pki", 0700).ok());
  Install("pki/ca.crt", cluster_.ca().cert_pem, 0644);
  Install("pki/ca.key", cluster_.ca().key_pem, 0600);
  for (const char* node : {"a", "b"}) {
    Install(absl::StrCat("pki/", node, ".crt"), Read(absl::StrCat(node, ".crt")), 0644);
    Install(absl::StrCat("pki/", node, ".key"), Read(absl::StrCat(node, ".key")), 0600);
  }
  ASSERT_NO_FATAL_FAILURE(StartPair());
  const std::string pki = cluster_.dir() + "/pki";
  const std::string old_ca = cluster_.ca().cert_pem;
  const PemPair old_b = Pair("b");

  // For comparison: the same measure over 3 s of the pair at rest.
  ConfigWriter writer(cluster_.socket("a"));
  HelloGapSampler baseline(&cluster_);
  absl::SleepFor(absl::Seconds(3));
  baseline.Stop();
  HelloGapSampler sampler(&cluster_);
  absl::Time started = absl::Now();

  // 1. A new CA beside the old one; both nodes trust both.
  CommandResult rotate = cluster_.Cli({"certs", "rotate-ca", "--out", pki});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.err;
  const std::string next_ca = Read("pki/ca-next.crt");
  const std::string next_fp = *CertificateFingerprint(next_ca);
  for (const std::string node : {"a", "b"}) {
    Install(node + "-ca.crt", Read("pki/ca-bundle.crt"), 0644);
    ASSERT_TRUE(WaitTls(node, [](const v1::TlsStatus& t) { return t.cas_size() == 2; }))
        << Logs(cluster_.agent(node));
  }

  // 2. Each node's certificate reissued under the new CA.
  CommandResult reissue = cluster_.Cli({"certs", "init", "--cluster", "demo", "--nodes", "a,b",
                                        "--out", pki, "--ca", "next", "--force"});
  ASSERT_EQ(reissue.exit_code, 0) << reissue.err;
  for (const std::string node : {"a", "b"}) {
    Install(node + ".crt", Read("pki/" + node + ".crt"), 0644);
    Install(node + ".key", Read("pki/" + node + ".key"), 0600);
    ASSERT_TRUE(WaitTls(node, [&](const v1::TlsStatus& t) {
      return t.cas_size() == 2 && t.cas(1).fingerprint() == next_fp && t.cas(1).issued_this_node();
    })) << Logs(cluster_.agent(node));
  }

  // 3. The old CA retired.
  CommandResult retire = cluster_.Cli({"certs", "retire-ca", "--out", pki});
  ASSERT_EQ(retire.exit_code, 0) << retire.err;
  ASSERT_EQ(Read("pki/ca.crt"), next_ca);
  for (const std::string node : {"a", "b"}) {
    Install(node + "-ca.crt", Read("pki/ca.crt"), 0644);
    ASSERT_TRUE(WaitTls(node, [&](const v1::TlsStatus& t) {
      return t.cas_size() == 1 && t.cas(0).fingerprint() == next_fp;
    })) << Logs(cluster_.agent(node));
  }
  absl::Duration took = absl::Now() - started;

  // A few more writes after the last step, then stop and compare.
  int written_before = writer.written();
  ASSERT_TRUE(cluster_.WaitFor(
      "a", [&](const v1::StatusResponse&) { return writer.written() >= written_before + 5; }));
  writer.Stop();
  sampler.Stop();

  printf(
      "CA rotation of a running pair (heartbeat 100 ms, lost after 5 missed) took %s; "
      "%d status samples; longest gap between hellos: a saw %lld ms, b saw %lld ms (at rest "
      "before: %lld ms, %lld ms); %d config writes (%d refused); path_down events: a %d, "
      "b %d\n",
      absl::FormatDuration(took).c_str(), sampler.samples(),
      static_cast<long long>(sampler.longest_gap_ms("a")),
      static_cast<long long>(sampler.longest_gap_ms("b")),
      static_cast<long long>(baseline.longest_gap_ms("a")),
      static_cast<long long>(baseline.longest_gap_ms("b")), writer.written(), writer.failed(),
      Occurrences(Logs(cluster_.agent("a")), "event=path_down"),
      Occurrences(Logs(cluster_.agent("b")), "event=path_down"));

  // No peer was ever lost, by the samples or by the logs.
  EXPECT_EQ(sampler.down(), "");
  EXPECT_THAT(Logs(cluster_.agent("a")), Not(HasSubstr("event=peer_down")));
  EXPECT_THAT(Logs(cluster_.agent("b")), Not(HasSubstr("event=peer_down")));
  EXPECT_GT(sampler.samples(), 100);
  // Config sync went on: every write was taken, and b holds the last one.
  EXPECT_EQ(writer.failed(), 0);
  const std::string last = absl::StrCat(writer.written());
  ConfigClient b(cluster_.socket("b"));
  ASSERT_TRUE(cluster_.WaitFor("b", [&](const v1::StatusResponse&) {
    return b.Get("rotation.counter").value_or("") == last;
  })) << Logs(cluster_.agent("b"));

  // New connections now need the new CA on both sides: a presents its new
  // certificate, and refuses a client certificate of the retired CA.
  const PemPair new_b = Pair("b");
  EXPECT_EQ(Handshake("a", new_b, next_ca).value_or("refused"),
            *CertificateFingerprint(Read("a.crt")));
  EXPECT_FALSE(Handshake("a", old_b, old_ca + next_ca).ok());
}

}  // namespace
}  // namespace cloudha
