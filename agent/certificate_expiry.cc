#include "agent/certificate_expiry.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

std::string Count(int64_t n, const char* unit) {
  return absl::StrCat(n, " ", unit, n == 1 ? "" : "s");
}

std::string Span(absl::Duration d) {
  if (d >= absl::Hours(48)) return Count(d / absl::Hours(24), "day");
  if (d >= absl::Hours(2)) return Count(d / absl::Hours(1), "hour");
  return Count(d / absl::Minutes(1), "minute");
}

}  // namespace

ExpiryStage ExpiryStageAt(absl::Time not_after, absl::Time now) {
  absl::Duration left = not_after - now;
  if (left <= absl::ZeroDuration()) return ExpiryStage::kExpired;
  if (left <= kSecondExpiryWarning) return ExpiryStage::kWithin7Days;
  if (left <= kFirstExpiryWarning) return ExpiryStage::kWithin30Days;
  return ExpiryStage::kFar;
}

std::string DescribeExpiry(absl::Time not_after, absl::Time now) {
  std::string date = absl::FormatTime("%Y-%m-%d %H:%M UTC", not_after, absl::UTCTimeZone());
  if (not_after <= now) return absl::StrCat(Span(now - not_after), " ago (", date, ")");
  return absl::StrCat("in ", Span(not_after - now), " (", date, ")");
}

std::vector<ExpiryWarning> ExpiryWarnings(const TlsMaterial& material, absl::Time now) {
  std::vector<ExpiryWarning> warnings;
  ExpiryStage stage = ExpiryStageAt(material.not_after, now);
  if (stage != ExpiryStage::kFar) {
    bool expired = stage == ExpiryStage::kExpired;
    warnings.push_back(
        {material.fingerprint, "certificate", material.not_after, stage,
         absl::StrCat("this node's certificate (", material.identity.node, ", ",
                      material.fingerprint, ") ", expired ? "expired " : "expires ",
                      DescribeExpiry(material.not_after, now),
                      ": issue a new one (cloudha certs init --force) and replace "
                      "tls.cert_file and tls.key_file; the agent loads them without a restart")});
  }
  for (size_t i = 0; i < material.cas.size(); ++i) {
    const TrustedCa& ca = material.cas[i];
    stage = ExpiryStageAt(ca.not_after, now);
    if (stage == ExpiryStage::kFar) continue;
    bool expired = stage == ExpiryStage::kExpired;
    std::string which =
        i == material.issuer ? "the CA that issued this node's certificate" : "the CA";
    std::string fix = i == material.issuer
                          ? "rotate the CA (docs/security.md, \"Rotating the CA\")"
                          : "once no node's certificate is issued by it, remove it from "
                            "tls.ca_file (cloudha certs retire-ca)";
    warnings.push_back({ca.fingerprint, "ca", ca.not_after, stage,
                        absl::StrCat(which, " (\"", ca.name, "\", ", ca.fingerprint, ") ",
                                     expired ? "expired " : "expires ",
                                     DescribeExpiry(ca.not_after, now), ": ", fix)});
  }
  return warnings;
}

std::vector<ExpiryWarning> ExpiryAnnouncer::Due(const TlsMaterial& material, absl::Time now) {
  std::vector<ExpiryWarning> due;
  for (ExpiryWarning& warning : ExpiryWarnings(material, now)) {
    ExpiryStage& announced = announced_[warning.fingerprint];
    if (warning.stage <= announced) continue;
    announced = warning.stage;
    due.push_back(std::move(warning));
  }
  return due;
}

}  // namespace cloudha
