#include "crypto/node_identity.h"

#include <openssl/x509v3.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/openssl_util.h"

namespace cloudha {
namespace {

constexpr absl::string_view kScheme = "cloudha://";

}  // namespace

absl::Status ValidateName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (name.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name, "\" is ", name.size(), " characters; at most 63"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", name,
          "\" may hold only lowercase letters, digits and '-'"));
    }
  }
  if (name.front() == '-' || name.back() == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", name, "\" may not start or end with '-'"));
  }
  return absl::OkStatus();
}

std::string NodeUri(const NodeIdentity& id) {
  return absl::StrCat(kScheme, id.cluster, "/", id.node);
}

std::string NodeDnsName(const NodeIdentity& id) {
  return absl::StrCat(id.node, ".", id.cluster, ".cloudha");
}

absl::StatusOr<NodeIdentity> ParseNodeUri(absl::string_view uri) {
  if (!absl::StartsWith(uri, kScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", uri, "\" is not a cloudha://CLUSTER/NODE URI"));
  }
  absl::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", uri, "\" is not a cloudha://CLUSTER/NODE URI"));
  }
  NodeIdentity id{std::string(rest.substr(0, slash)),
                  std::string(rest.substr(slash + 1))};
  if (absl::Status s = ValidateName("cluster in URI", id.cluster); !s.ok()) return s;
  if (absl::Status s = ValidateName("node in URI", id.node); !s.ok()) return s;
  return id;
}

absl::StatusOr<NodeIdentity> IdentityFromCertificatePem(absl::string_view pem) {
  absl::StatusOr<X509Ptr> cert = ParseCertificatePem(pem);
  if (!cert.ok()) return cert.status();
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr)));
  std::vector<NodeIdentity> found;
  std::vector<std::string> errors;
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
      absl::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                             static_cast<size_t>(ASN1_STRING_length(uri)));
      if (!absl::StartsWith(text, kScheme)) continue;
      absl::StatusOr<NodeIdentity> id = ParseNodeUri(text);
      if (id.ok()) {
        found.push_back(*id);
      } else {
        errors.push_back(std::string(id.status().message()));
      }
    }
  }
  if (found.size() == 1) return found[0];
  if (found.size() > 1) {
    return absl::InvalidArgumentError(
        "certificate names more than one cloudha node");
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  }
  return absl::InvalidArgumentError(
      "certificate names no cloudha node (no cloudha://CLUSTER/NODE "
      "subjectAltName; make it with `cloudha certs init`)");
}

}  // namespace cloudha
