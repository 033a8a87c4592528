#include "agent/cli/certs_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "crypto/certificate_authority.h"
#include "crypto/node_identity.h"
#include "base/secure_file.h"

namespace cloudha {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

int Fail(const std::string& message) {
  std::cerr << "cloudha certs init: " << message << "\n";
  return 1;
}

}  // namespace

int RunCertsInit(const CertsInitOptions& options) {
  if (absl::Status s = ValidateName("--cluster", options.cluster); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (options.nodes.empty()) return Fail("--nodes names no node");
  std::set<std::string> unique;
  for (const std::string& node : options.nodes) {
    if (absl::Status s = ValidateName("node", node); !s.ok()) return Fail(std::string(s.message()));
    if (node == "ca") return Fail("\"ca\" cannot be a node id (it names the CA files)");
    if (!unique.insert(node).second) return Fail(absl::StrCat("node \"", node, "\" is named twice"));
  }
  if (options.days < 1 || options.days > 36500) {
    return Fail(absl::StrCat("--days must be 1..36500, got ", options.days));
  }
  // Like `mkdir -p`: `--out /etc/cloudha/certs` works on a fresh machine.
  if (absl::Status s = MakeDirectories(options.out, 0755); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  const std::string ca_crt = options.out + "/ca.crt";
  const std::string ca_key = options.out + "/ca.key";
  const absl::Time now = absl::Now();
  // An hour of slack for peers whose clocks run a little behind.
  const Validity validity{now - absl::Hours(1), absl::Hours(24) * options.days};
  const Overwrite overwrite = options.force ? Overwrite::kReplace : Overwrite::kRefuse;

  // Decide everything before writing anything, so that a refusal loses
  // nothing and leaves no half-made set behind.
  std::vector<std::string> existing;
  for (const std::string& node : options.nodes) {
    for (const char* ext : {".crt", ".key"}) {
      std::string path = absl::StrCat(options.out, "/", node, ext);
      if (Exists(path)) existing.push_back(path);
    }
  }
  if (!options.force && !existing.empty()) {
    return Fail(absl::StrCat(absl::StrJoin(existing, ", "),
                             " already exist; nothing was written (use --force to replace)"));
  }
  // --force replaces node files, never the CA: a new CA would leave every
  // other node's certificate unverifiable. Only --new-ca makes one.
  bool reuse_ca = !options.new_ca && Exists(ca_crt) && Exists(ca_key);
  if (!options.new_ca && !reuse_ca && (Exists(ca_crt) || Exists(ca_key))) {
    return Fail(absl::StrCat("only one of ", ca_crt, " and ", ca_key,
                             " exists; nothing was written (restore the other, or use --new-ca "
                             "to make a new CA and reissue every node)"));
  }
  if (options.new_ca && !options.force && (Exists(ca_crt) || Exists(ca_key))) {
    return Fail(absl::StrCat(ca_crt, " exists; nothing was written (--new-ca replaces it only "
                             "with --force, and then every node needs a new certificate)"));
  }

  PemPair ca;
  if (reuse_ca) {
    absl::StatusOr<std::string> cert = ReadSmallFile(ca_crt);
    absl::StatusOr<std::string> key = ReadSmallFile(ca_key);
    if (!cert.ok()) return Fail(std::string(cert.status().message()));
    if (!key.ok()) return Fail(std::string(key.status().message()));
    ca = {*cert, *key};
    absl::StatusOr<std::string> cluster = ClusterOfCa(ca.cert_pem);
    if (!cluster.ok()) return Fail(absl::StrCat(ca_crt, ": ", cluster.status().message()));
    if (*cluster != options.cluster) {
      return Fail(absl::StrCat(ca_crt, " is the CA of cluster \"", *cluster, "\", not \"",
                               options.cluster, "\"; nothing was written"));
    }
    std::cout << "using the existing CA " << ca_crt << "\n";
  } else {
    absl::StatusOr<PemPair> made = CreateClusterCa(options.cluster, validity);
    if (!made.ok()) return Fail(std::string(made.status().message()));
    ca = *made;
  }

  std::vector<std::pair<std::string, PemPair>> issued;
  for (const std::string& node : options.nodes) {
    absl::StatusOr<PemPair> pair = IssueNodeCertificate(ca, {options.cluster, node}, validity);
    if (!pair.ok()) {
      return Fail(absl::StrCat("node \"", node, "\": ", pair.status().message()));
    }
    issued.emplace_back(node, *pair);
  }

  auto write = [&](const std::string& path, const std::string& content, int mode) {
    absl::Status s = WriteFileAtomically(path, content, mode,
                                         path == ca_crt || path == ca_key
                                             ? (options.new_ca && options.force ? Overwrite::kReplace
                                                                                : Overwrite::kRefuse)
                                             : overwrite);
    if (!s.ok()) std::cerr << "cloudha certs init: " << s.message() << "\n";
    return s.ok();
  };
  if (!reuse_ca) {
    if (!write(ca_key, ca.key_pem, 0600) || !write(ca_crt, ca.cert_pem, 0644)) return 1;
    std::cout << "wrote " << ca_crt << " and " << ca_key << " (cluster " << options.cluster
              << ", " << options.days << " days)\n";
  }
  for (const auto& [node, pair] : issued) {
    std::string base = absl::StrCat(options.out, "/", node);
    if (!write(base + ".key", pair.key_pem, 0600) || !write(base + ".crt", pair.cert_pem, 0644)) {
      return 1;
    }
    std::cout << "wrote " << base << ".crt and " << base << ".key (cloudha://"
              << options.cluster << "/" << node << ")\n";
  }
  if (!reuse_ca) {
    std::cout << "keep " << ca_key
              << " offline: only `cloudha certs init` needs it, to add nodes later\n";
  }
  return 0;
}

}  // namespace cloudha
