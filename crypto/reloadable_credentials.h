// gRPC credentials whose certificate, key and trusted CAs can be replaced
// while the servers and channels made from them keep running: a TLS
// handshake uses the material installed last, a connection already
// established keeps what it was made with.
//
// gRPC 1.51 reloads TLS material only from files
// (grpc::experimental::FileWatcherCertificateProvider, which rereads them
// every second); its static provider cannot be changed. So the material,
// already checked (crypto/tls_material.h), is written to a private folder of
// the agent's, which gRPC watches: the files an operator edits are never
// read by gRPC directly, and a bad file never reaches a handshake.
//
// The credentials keep today's guarantees: mutual TLS only (the server
// requires and verifies a client certificate against the trusted CAs), and
// a client verifies the server's name set with SetExpectedPeer.
//
// Thread-safe.
#ifndef CLOUDHA_CRYPTO_RELOADABLE_CREDENTIALS_H_
#define CLOUDHA_CRYPTO_RELOADABLE_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/tls_material.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"

namespace cloudha {

class ReloadableCredentials {
 public:
  // How often gRPC rereads the installed files: after Install returns, new
  // handshakes use the new material within this time (plus a file read).
  static constexpr absl::Duration kRefreshInterval = absl::Seconds(1);

  // Creates `folder` (0700) if needed and installs `material` there, as
  // trust.pem (the CA bundle) and identity.pem (the certificate, then the
  // key; 0600). FAILED_PRECONDITION when the folder cannot be made or
  // written.
  static absl::StatusOr<std::unique_ptr<ReloadableCredentials>> Create(const std::string& folder,
                                                                       const TlsMaterial& material);

  ReloadableCredentials(const ReloadableCredentials&) = delete;
  ReloadableCredentials& operator=(const ReloadableCredentials&) = delete;

  // Replaces the material new handshakes use (each file atomically). The
  // caller has checked it. On an error the previous files stay in place.
  absl::Status Install(const TlsMaterial& material);

  // The peer listener's credentials and every outgoing channel's. They stay
  // tied to this object's files: create servers and channels from them as
  // often as needed.
  std::shared_ptr<grpc::ServerCredentials> server_credentials() const {
    return server_credentials_;
  }
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials() const {
    return channel_credentials_;
  }

 private:
  explicit ReloadableCredentials(std::string folder);
  absl::Status Write(const TlsMaterial& material) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string folder_;
  absl::Mutex mu_;
  // The identity file's last modification time: each new one gets a later
  // second, so gRPC's reader (which compares modification times, in whole
  // seconds, before and after reading) never pairs an old key with a new
  // certificate.
  int64_t identity_mtime_ ABSL_GUARDED_BY(mu_) = 0;
  // gRPC's options hold the provider by shared_ptr; every credentials
  // object made here shares this one.
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
  std::shared_ptr<grpc::ServerCredentials> server_credentials_;
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials_;
};

}  // namespace cloudha

#endif  // CLOUDHA_CRYPTO_RELOADABLE_CREDENTIALS_H_
