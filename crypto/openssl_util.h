// Owning pointers for OpenSSL objects and OpenSSL's error queue as a
// message. Internal to //crypto.
//
// Thread-safe as OpenSSL is: each object belongs to one thread at a time.
#ifndef CLOUDHA_CRYPTO_OPENSSL_UTIL_H_
#define CLOUDHA_CRYPTO_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

struct OpenSslDeleter {
  void operator()(BIO* p) const { BIO_free_all(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslDeleter>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter>;

// Drains OpenSSL's thread-local error queue into one line ("" if empty).
std::string OpenSslErrors();

// Parses the first certificate of a PEM text.
absl::StatusOr<X509Ptr> ParseCertificatePem(absl::string_view pem);

// Parses a PEM private key (PKCS#8, or a traditional EC/RSA key).
absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem);

// PEM texts of a certificate and a private key (PKCS#8, unencrypted).
absl::StatusOr<std::string> CertificateToPem(X509* cert);
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key);

}  // namespace cloudha

#endif  // CLOUDHA_CRYPTO_OPENSSL_UTIL_H_
