#include "crypto/openssl_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

BioPtr MemoryBio(absl::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

absl::StatusOr<std::string> DrainBio(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) {
    return absl::InternalError(absl::StrCat("PEM encoding failed: ", OpenSslErrors()));
  }
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

std::string OpenSslErrors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buffer[256];
    ERR_error_string_n(err, buffer, sizeof(buffer));
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out;
}

absl::StatusOr<X509Ptr> ParseCertificatePem(absl::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    OpenSslErrors();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ParsePrivateKeyPem(absl::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    OpenSslErrors();
    return absl::InvalidArgumentError(
        "not an unencrypted PEM private key");
  }
  return key;
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return absl::InternalError(absl::StrCat("PEM encoding failed: ", OpenSslErrors()));
  }
  return DrainBio(bio.get());
}

absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return absl::InternalError(absl::StrCat("PEM encoding failed: ", OpenSslErrors()));
  }
  return DrainBio(bio.get());
}

}  // namespace cloudha
