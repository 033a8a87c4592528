// When this node's certificate and the CAs it trusts expire, and the
// warnings that are due: 30 days before, again 7 days before, and once
// expired.
//
// Pure functions of the material and the wall-clock time, and one small
// class that remembers what it announced. ExpiryAnnouncer is
// thread-compatible.
#ifndef CLOUDHA_AGENT_CERTIFICATE_EXPIRY_H_
#define CLOUDHA_AGENT_CERTIFICATE_EXPIRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "crypto/tls_material.h"

namespace cloudha {

inline constexpr absl::Duration kFirstExpiryWarning = absl::Hours(24 * 30);
inline constexpr absl::Duration kSecondExpiryWarning = absl::Hours(24 * 7);

// Ordered: a later stage is more urgent.
enum class ExpiryStage { kFar = 0, kWithin30Days = 1, kWithin7Days = 2, kExpired = 3 };

// kWithin30Days when not_after - now <= 30 days, kWithin7Days when <= 7
// days, kExpired when now >= not_after.
ExpiryStage ExpiryStageAt(absl::Time not_after, absl::Time now);

// "in 6 days (2027-01-15 12:00 UTC)", "in 5 hours (...)", "2 days ago (...)".
std::string DescribeExpiry(absl::Time not_after, absl::Time now);

struct ExpiryWarning {
  // The certificate's or the CA's fingerprint (TlsMaterial::fingerprint,
  // TrustedCa::fingerprint).
  std::string fingerprint;
  // "certificate" (this node's) or "ca".
  std::string what;
  absl::Time not_after;
  ExpiryStage stage = ExpiryStage::kFar;
  // One line for people: what expires, when, and what to do.
  std::string message;
};

// Every warning in force at `now`: this node's certificate first, then the
// bundle's CAs in the file's order; none when nothing expires within 30
// days.
std::vector<ExpiryWarning> ExpiryWarnings(const TlsMaterial& material, absl::Time now);

// Gives each warning once per stage: a certificate 20 days from its end is
// announced once, again when it is 7 days away, and once more when it has
// expired. New material (another fingerprint) starts afresh.
class ExpiryAnnouncer {
 public:
  // The warnings whose stage is later than the one last announced for the
  // same fingerprint.
  std::vector<ExpiryWarning> Due(const TlsMaterial& material, absl::Time now);

 private:
  std::map<std::string, ExpiryStage> announced_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CERTIFICATE_EXPIRY_H_
