#include "crypto/tls_material.h"

#include <sys/stat.h>

#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "crypto/openssl_util.h"
#include "base/secure_file.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"

namespace cloudha {
namespace {

absl::Status Prefixed(absl::string_view file, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(file, ": ", status.message()));
}

absl::StatusOr<absl::Time> NotAfter(X509* cert) {
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
    OpenSslErrors();
    return absl::InvalidArgumentError("unreadable notAfter");
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<TlsMaterial> CheckTlsMaterial(std::string ca_pem, std::string cert_pem,
                                             std::string key_pem, absl::Time now) {
  absl::StatusOr<X509Ptr> ca = ParseCertificatePem(ca_pem);
  if (!ca.ok()) return Prefixed("CA certificate", ca.status());
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(cert_pem);
  if (!cert.ok()) return Prefixed("certificate", cert.status());
  absl::StatusOr<PkeyPtr> key = ParsePrivateKeyPem(key_pem);
  if (!key.ok()) return Prefixed("key", key.status());
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    OpenSslErrors();
    return absl::InvalidArgumentError(
        "key: the private key does not belong to the certificate");
  }
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (store == nullptr || ctx == nullptr || X509_STORE_add_cert(store.get(), ca->get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return absl::InternalError(absl::StrCat("certificate check: ", OpenSslErrors()));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    OpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate: not valid under the CA certificate: ",
        X509_verify_cert_error_string(err)));
  }
  absl::StatusOr<NodeIdentity> identity = IdentityFromCertificatePem(cert_pem);
  if (!identity.ok()) return Prefixed("certificate", identity.status());
  absl::StatusOr<absl::Time> not_after = NotAfter(cert->get());
  if (!not_after.ok()) return Prefixed("certificate", not_after.status());
  return TlsMaterial{std::move(ca_pem), std::move(cert_pem), std::move(key_pem),
                     *std::move(identity), *not_after};
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files, absl::Time now) {
  absl::StatusOr<std::string> ca = ReadSmallFile(files.ca_file);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = ReadSmallFile(files.cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadSmallFile(files.key_file);
  if (!key.ok()) return key.status();
  // A private key other users can read is a key they may have copied.
  struct stat st;
  if (stat(files.key_file.c_str(), &st) == 0 && (st.st_mode & S_IRWXO) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: the private key is accessible to other users (mode %04o); make it private "
        "(chmod 600 %s, or 640 with the agent's group) and consider it exposed",
        files.key_file, st.st_mode & 07777, files.key_file));
  }
  absl::StatusOr<TlsMaterial> material =
      CheckTlsMaterial(*std::move(ca), *std::move(cert), *std::move(key), now);
  if (material.ok()) return material;
  // Name the file the problem is in.
  absl::string_view message = material.status().message();
  const std::string* file = &files.cert_file;
  for (const auto& [label, path] : {std::pair<absl::string_view, const std::string*>{
                                        "CA certificate: ", &files.ca_file},
                                    {"certificate: ", &files.cert_file},
                                    {"key: ", &files.key_file}}) {
    if (absl::ConsumePrefix(&message, label)) {
      file = path;
      break;
    }
  }
  return absl::Status(material.status().code(), absl::StrCat(*file, ": ", message));
}

std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(
    const TlsMaterial& material) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = material.ca_pem;
  options.pem_key_cert_pairs.push_back({material.key_pem, material.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials(
    const TlsMaterial& material) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = material.ca_pem;
  options.pem_private_key = material.key_pem;
  options.pem_cert_chain = material.cert_pem;
  return grpc::SslCredentials(options);
}

void SetExpectedPeer(const NodeIdentity& peer, grpc::ChannelArguments* args) {
  args->SetSslTargetNameOverride(NodeDnsName(peer));
}

absl::StatusOr<NodeIdentity> PeerIdentityFromAuthContext(
    const grpc::AuthContext& auth) {
  std::vector<grpc::string_ref> pems = auth.FindPropertyValues("x509_pem_cert");
  if (pems.empty()) {
    return absl::PermissionDeniedError("the peer presented no certificate");
  }
  absl::StatusOr<NodeIdentity> id = IdentityFromCertificatePem(
      absl::string_view(pems[0].data(), pems[0].size()));
  if (!id.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("peer certificate: ", id.status().message()));
  }
  return id;
}

}  // namespace cloudha
