#include "agent/cli/check_config_command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/agent_config.h"
#include "agent/certificate_expiry.h"
#include "crypto/tls_material.h"

namespace cloudha {
namespace {

std::string Date(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

// What the TLS files hold, and the expiry warnings in force (which do not
// make the configuration bad).
void PrintTls(const std::string& path, const v1::AgentConfig& config, absl::Time now) {
  absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(
      {config.tls().ca_file(), config.tls().cert_file(), config.tls().key_file()}, now);
  if (!tls.ok()) return;  // reported as a problem already
  std::cout << "tls: certificate " << tls->fingerprint << " expires " << Date(tls->not_after)
            << ", issued by " << tls->cas[tls->issuer].fingerprint << "; "
            << config.tls().ca_file() << " trusts " << tls->cas.size() << " CA"
            << (tls->cas.size() == 1 ? "" : "s") << ":\n";
  for (size_t i = 0; i < tls->cas.size(); ++i) {
    const TrustedCa& ca = tls->cas[i];
    std::cout << "  " << ca.fingerprint << " \"" << ca.name << "\" until " << Date(ca.not_after)
              << (i == tls->issuer ? "  (issued this node's certificate)" : "")
              << (ca.not_after <= now ? "  EXPIRED" : "") << "\n";
  }
  for (const ExpiryWarning& warning : ExpiryWarnings(*tls, now)) {
    std::cerr << path << ": warning: " << warning.message << "\n";
  }
}

}  // namespace

int RunCheckConfig(const std::string& path) {
  const absl::Time now = absl::Now();
  LoadedConfig loaded = LoadAgentConfig(path, now);
  for (const ConfigProblem& problem : loaded.problems) {
    std::cerr << problem.ToString() << "\n";
  }
  if (!loaded.problems.empty()) {
    std::cerr << path << ": " << loaded.problems.size() << " problem"
              << (loaded.problems.size() == 1 ? "" : "s") << "\n";
    return kExitBadConfig;
  }
  std::cout << path << ": ok (node " << loaded.config.node().id() << " of cluster "
            << loaded.config.cluster().name() << ", " << loaded.config.peers_size() << " peer"
            << (loaded.config.peers_size() == 1 ? "" : "s") << ")\n";
  PrintTls(path, loaded.config, now);
  return 0;
}

}  // namespace cloudha
