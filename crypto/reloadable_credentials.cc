#include "crypto/reloadable_credentials.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/secure_file.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace cloudha {
namespace {

constexpr char kTrustFile[] = "trust.pem";
constexpr char kIdentityFile[] = "identity.pem";

absl::Status Failed(const std::string& what, const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

}  // namespace

ReloadableCredentials::ReloadableCredentials(std::string folder) : folder_(std::move(folder)) {}

absl::StatusOr<std::unique_ptr<ReloadableCredentials>> ReloadableCredentials::Create(
    const std::string& folder, const TlsMaterial& material) {
  if (absl::Status s = MakeDirectories(folder, 0700); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  // It holds a copy of the private key.
  if (chmod(folder.c_str(), 0700) != 0) return Failed("cannot make private", folder);
  std::unique_ptr<ReloadableCredentials> credentials(new ReloadableCredentials(folder));
  {
    absl::MutexLock lock(&credentials->mu_);
    if (absl::Status s = credentials->Write(material); !s.ok()) return s;
  }
  const std::string identity = absl::StrCat(folder, "/", kIdentityFile);
  // Reads both files once before returning, so the first handshake has them.
  credentials->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity, identity, absl::StrCat(folder, "/", kTrustFile),
      static_cast<unsigned int>(absl::ToInt64Seconds(kRefreshInterval)));

  grpc::experimental::TlsServerCredentialsOptions server(credentials->provider_);
  server.watch_root_certs();
  server.watch_identity_key_cert_pairs();
  // The handshake itself refuses a client without a certificate of a
  // trusted CA; who that client is gets checked on every stream
  // (PeerIdentityFromAuthContext), as before.
  server.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  server.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  credentials->server_credentials_ = grpc::experimental::TlsServerCredentials(server);

  grpc::experimental::TlsChannelCredentialsOptions channel;
  channel.set_certificate_provider(credentials->provider_);
  channel.watch_root_certs();
  channel.watch_identity_key_cert_pairs();
  channel.set_verify_server_certs(true);
  // The server's certificate must carry the name SetExpectedPeer set.
  channel.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  credentials->channel_credentials_ = grpc::experimental::TlsCredentials(channel);
  if (credentials->server_credentials_ == nullptr || credentials->channel_credentials_ == nullptr) {
    return absl::InternalError("gRPC refused the TLS credentials options");
  }
  return credentials;
}

absl::Status ReloadableCredentials::Install(const TlsMaterial& material) {
  absl::MutexLock lock(&mu_);
  return Write(material);
}

absl::Status ReloadableCredentials::Write(const TlsMaterial& material) {
  const std::string trust = absl::StrCat(folder_, "/", kTrustFile);
  const std::string identity = absl::StrCat(folder_, "/", kIdentityFile);
  const std::string next = identity + ".next";
  if (absl::Status s = WriteFileAtomically(trust, material.ca_pem, 0600, Overwrite::kReplace);
      !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  std::string pair = material.cert_pem;
  if (!absl::EndsWith(pair, "\n")) pair += "\n";
  pair += material.key_pem;
  if (absl::Status s = WriteFileAtomically(next, pair, 0600, Overwrite::kReplace); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  // A later second than the file it replaces (see identity_mtime_); the
  // file system's own time, never pushed back.
  struct stat st;
  if (stat(next.c_str(), &st) != 0) return Failed("cannot stat", next);
  if (st.st_mtime <= identity_mtime_) {
    struct timespec times[2];
    times[0].tv_sec = identity_mtime_ + 1;
    times[0].tv_nsec = 0;
    times[1] = times[0];
    if (utimensat(AT_FDCWD, next.c_str(), times, 0) != 0) return Failed("cannot touch", next);
    identity_mtime_ += 1;
  } else {
    identity_mtime_ = st.st_mtime;
  }
  if (std::rename(next.c_str(), identity.c_str()) != 0) return Failed("cannot replace", identity);
  return absl::OkStatus();
}

}  // namespace cloudha
