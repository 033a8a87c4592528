#include "crypto/tls_material.h"

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
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

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* time, absl::string_view what) {
  struct tm tm;
  if (ASN1_TIME_to_tm(time, &tm) != 1) {
    OpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat("unreadable ", what));
  }
  return absl::FromTM(tm, absl::UTCTimeZone());
}

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), md, &size) != 1 || size < 8) {
    OpenSslErrors();
    return "SHA256:?";
  }
  return absl::StrCat("SHA256:", absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<const char*>(md), 8)));
}

std::string CommonName(X509* cert) {
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                                sizeof(cn)) > 0) {
    return cn;
  }
  char line[256] = {0};
  X509_NAME_oneline(X509_get_subject_name(cert), line, sizeof(line));
  return line;
}

// The certificates of a bundle, checked as CheckCaBundle documents.
absl::StatusOr<std::vector<X509Ptr>> ParseCaBundle(absl::string_view pem,
                                                   std::vector<TrustedCa>* cas) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError(absl::StrCat("bundle: ", OpenSslErrors()));
  std::vector<X509Ptr> certs;
  for (int entry = 1;; ++entry) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long size = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &size) != 1) {
      // No further "-----BEGIN" line is the end of the bundle; anything
      // else is a block that is cut short or not base64.
      unsigned long err = ERR_peek_last_error();
      OpenSslErrors();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) break;
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", entry, " is not a valid PEM block (cut short?)"));
    }
    std::string block(name);
    OPENSSL_free(name);
    OPENSSL_free(header);
    X509Ptr cert;
    if (block == "CERTIFICATE") {
      const unsigned char* p = data;
      cert.reset(d2i_X509(nullptr, &p, size));
    }
    OPENSSL_free(data);
    if (absl::StrContains(block, "PRIVATE KEY")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry ", entry, " is a private key: the CA file holds CA certificates only (a CA "
          "key never belongs on a node; remove it and consider it exposed)"));
    }
    if (block != "CERTIFICATE") {
      return absl::InvalidArgumentError(absl::StrCat(
          "entry ", entry, " is a PEM \"", block, "\" block; the CA file holds CA "
          "certificates only"));
    }
    if (cert == nullptr) {
      OpenSslErrors();
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", entry, " is not a readable certificate"));
    }
    TrustedCa ca{CommonName(cert.get()), Fingerprint(cert.get()), absl::InfinitePast(),
                 absl::InfinitePast()};
    if (X509_check_ca(cert.get()) != 1) {
      OpenSslErrors();
      return absl::InvalidArgumentError(absl::StrCat(
          "entry ", entry, " (\"", ca.name, "\", ", ca.fingerprint,
          ") is not a CA certificate (no basicConstraints CA:TRUE); the CA file holds CA "
          "certificates only (is it a node certificate?)"));
    }
    for (size_t i = 0; i < certs.size(); ++i) {
      if (X509_cmp(certs[i].get(), cert.get()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("entries ", i + 1, " and ", entry,
                                                       " are the same CA certificate (",
                                                       ca.fingerprint, "); keep one"));
      }
    }
    absl::StatusOr<absl::Time> not_before = ToTime(X509_get0_notBefore(cert.get()), "notBefore");
    absl::StatusOr<absl::Time> not_after = ToTime(X509_get0_notAfter(cert.get()), "notAfter");
    if (!not_before.ok() || !not_after.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry ", entry, " has an unreadable validity"));
    }
    ca.not_before = *not_before;
    ca.not_after = *not_after;
    cas->push_back(std::move(ca));
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return absl::InvalidArgumentError("not a PEM certificate");
  return certs;
}

}  // namespace

absl::StatusOr<std::vector<TrustedCa>> CheckCaBundle(absl::string_view ca_pem) {
  std::vector<TrustedCa> cas;
  absl::StatusOr<std::vector<X509Ptr>> certs = ParseCaBundle(ca_pem, &cas);
  if (!certs.ok()) return certs.status();
  return cas;
}

absl::StatusOr<std::string> CertificateFingerprint(absl::string_view pem) {
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(pem);
  if (!cert.ok()) return cert.status();
  return Fingerprint(cert->get());
}

absl::StatusOr<TlsMaterial> CheckTlsMaterial(std::string ca_pem, std::string cert_pem,
                                             std::string key_pem, absl::Time now) {
  std::vector<TrustedCa> cas;
  absl::StatusOr<std::vector<X509Ptr>> bundle = ParseCaBundle(ca_pem, &cas);
  if (!bundle.ok()) return Prefixed("CA certificate", bundle.status());
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
  if (store == nullptr || ctx == nullptr) {
    return absl::InternalError(absl::StrCat("certificate check: ", OpenSslErrors()));
  }
  for (const X509Ptr& ca : *bundle) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
      return absl::InternalError(absl::StrCat("certificate check: ", OpenSslErrors()));
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return absl::InternalError(absl::StrCat("certificate check: ", OpenSslErrors()));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    OpenSslErrors();
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate: not valid under the CA certificate",
        bundle->size() > 1 ? absl::StrCat(" (nor any of the ", bundle->size(), " in the bundle)")
                           : "",
        ": ", X509_verify_cert_error_string(err), depth > 0 ? " (the CA's)" : ""));
  }
  // The trust anchor ends the verified chain; it is one of the bundle's.
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  X509* anchor = chain == nullptr || sk_X509_num(chain) == 0
                     ? nullptr
                     : sk_X509_value(chain, sk_X509_num(chain) - 1);
  size_t issuer = 0;
  for (size_t i = 0; anchor != nullptr && i < bundle->size(); ++i) {
    if (X509_cmp((*bundle)[i].get(), anchor) == 0) issuer = i;
  }
  absl::StatusOr<NodeIdentity> identity = IdentityFromCertificatePem(cert_pem);
  if (!identity.ok()) return Prefixed("certificate", identity.status());
  absl::StatusOr<absl::Time> not_after = ToTime(X509_get0_notAfter(cert->get()), "notAfter");
  if (!not_after.ok()) return Prefixed("certificate", not_after.status());
  std::string normalized;
  for (const X509Ptr& ca : *bundle) {
    absl::StatusOr<std::string> pem = CertificateToPem(ca.get());
    if (!pem.ok()) return pem.status();
    normalized += *pem;
  }
  TlsMaterial material;
  material.ca_pem = std::move(normalized);
  material.cert_pem = std::move(cert_pem);
  material.key_pem = std::move(key_pem);
  material.identity = *std::move(identity);
  material.not_after = *not_after;
  material.fingerprint = Fingerprint(cert->get());
  material.cas = std::move(cas);
  material.issuer = issuer;
  return material;
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
