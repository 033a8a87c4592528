#include "crypto/certificate_authority.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "crypto/openssl_util.h"

namespace cloudha {
namespace {

absl::Status OpenSslFailure(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

absl::StatusOr<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key == nullptr) return OpenSslFailure("generating a P-256 key");
  return key;
}

// A new certificate with a random 127-bit serial, the validity window, the
// subject CN and `key`'s public key; issuer and extensions are left to the
// caller.
absl::StatusOr<X509Ptr> NewCertificate(absl::string_view common_name,
                                       EVP_PKEY* key, const Validity& validity) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslFailure("creating a certificate");
  }
  BignumPtr serial(BN_new());
  if (serial == nullptr || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return OpenSslFailure("choosing a serial number");
  }
  time_t start = absl::ToTimeT(validity.not_before);
  time_t end = absl::ToTimeT(validity.not_before + validity.lifetime);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), start) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), end) == nullptr) {
    return OpenSslFailure("setting the validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  std::string cn(common_name);
  if (X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("cloudha"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    return OpenSslFailure("setting the subject");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return OpenSslFailure("setting the key");
  return cert;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslFailure(absl::StrCat("adding extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

absl::StatusOr<PemPair> SignAndEncode(X509* cert, EVP_PKEY* signer, EVP_PKEY* key) {
  if (X509_sign(cert, signer, EVP_sha256()) <= 0) return OpenSslFailure("signing");
  absl::StatusOr<std::string> cert_pem = CertificateToPem(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = PrivateKeyToPem(key);
  if (!key_pem.ok()) return key_pem.status();
  return PemPair{*std::move(cert_pem), *std::move(key_pem)};
}

}  // namespace

absl::StatusOr<PemPair> CreateClusterCa(absl::string_view cluster,
                                        const Validity& validity) {
  if (absl::Status s = ValidateName("cluster", cluster); !s.ok()) return s;
  absl::StatusOr<PkeyPtr> key = NewP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      NewCertificate(absl::StrCat("cloudha CA ", cluster), key->get(), validity);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) {
    return OpenSslFailure("setting the issuer");
  }
  for (const auto& [nid, value] : {
           std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"},
           {NID_subject_key_identifier, "hash"},
       }) {
    if (absl::Status s = AddExtension(c, c, nid, value); !s.ok()) return s;
  }
  return SignAndEncode(c, key->get(), key->get());
}

absl::StatusOr<std::string> ClusterOfCa(absl::string_view ca_cert_pem) {
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(ca_cert_pem);
  if (!cert.ok()) return cert.status();
  char cn[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert->get()), NID_commonName, cn, sizeof(cn));
  absl::string_view name(cn);
  if (!absl::ConsumePrefix(&name, "cloudha CA ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a cloudha CA (its subject CN is \"", cn, "\")"));
  }
  return std::string(name);
}

absl::StatusOr<bool> SignedBy(absl::string_view cert_pem, absl::string_view ca_cert_pem) {
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(cert_pem);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<X509Ptr> ca = ParseCertificatePem(ca_cert_pem);
  if (!ca.ok()) return ca.status();
  EVP_PKEY* key = X509_get0_pubkey(ca->get());
  bool signed_by = key != nullptr && X509_verify(cert->get(), key) == 1;
  OpenSslErrors();
  return signed_by;
}

absl::StatusOr<PemPair> IssueNodeCertificate(const PemPair& ca,
                                             const NodeIdentity& node,
                                             const Validity& validity) {
  if (absl::Status s = ValidateName("cluster", node.cluster); !s.ok()) return s;
  if (absl::Status s = ValidateName("node", node.node); !s.ok()) return s;
  absl::StatusOr<X509Ptr> ca_cert = ParseCertificatePem(ca.cert_pem);
  if (!ca_cert.ok()) return ca_cert.status();
  absl::StatusOr<PkeyPtr> ca_key = ParsePrivateKeyPem(ca.key_pem);
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    OpenSslErrors();
    return absl::InvalidArgumentError("the CA key does not belong to the CA certificate");
  }
  // Never outlive the CA: a certificate past its CA's end fails anyway.
  Validity capped = validity;
  struct tm ca_end;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(ca_cert->get()), &ca_end) == 1) {
    absl::Time end = absl::FromTM(ca_end, absl::UTCTimeZone());
    if (capped.not_before + capped.lifetime > end) capped.lifetime = end - capped.not_before;
  }
  absl::StatusOr<PkeyPtr> key = NewP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert = NewCertificate(
      absl::StrCat(node.node, ".", node.cluster), key->get(), capped);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(ca_cert->get())) != 1) {
    return OpenSslFailure("setting the issuer");
  }
  for (const auto& [nid, value] : {
           std::pair<int, std::string>{NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature"},
           {NID_ext_key_usage, "serverAuth,clientAuth"},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"},
           {NID_subject_alt_name,
            absl::StrCat("URI:", NodeUri(node), ",DNS:", NodeDnsName(node))},
       }) {
    if (absl::Status s = AddExtension(c, ca_cert->get(), nid, value); !s.ok()) return s;
  }
  return SignAndEncode(c, ca_key->get(), key->get());
}

}  // namespace cloudha
