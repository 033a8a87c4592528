#include "agent/cli/certs_command.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"
#include "crypto/certificate_authority.h"
#include "crypto/node_identity.h"
#include "crypto/tls_material.h"

namespace cloudha {
namespace {

// The files of a cluster's folder (certs_command.h).
struct Folder {
  explicit Folder(const std::string& out)
      : ca_crt(out + "/ca.crt"),
        ca_key(out + "/ca.key"),
        next_crt(out + "/ca-next.crt"),
        next_key(out + "/ca-next.key"),
        bundle(out + "/ca-bundle.crt") {}
  std::string ca_crt;
  std::string ca_key;
  std::string next_crt;
  std::string next_key;
  std::string bundle;
};

// File names (without .crt) that are not node certificates.
const std::set<std::string>& CaNames() {
  static const auto* names = new std::set<std::string>{"ca", "ca-next", "ca-bundle"};
  return *names;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

int Fail(const std::string& command, const std::string& message) {
  std::cerr << "cloudha certs " << command << ": " << message << "\n";
  return 1;
}

// The CA pair in `crt` and `key`, which must be the CA of `cluster`.
absl::StatusOr<PemPair> ReadCa(const std::string& crt, const std::string& key,
                               const std::string& cluster) {
  absl::StatusOr<std::string> cert = ReadSmallFile(crt);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> private_key = ReadSmallFile(key);
  if (!private_key.ok()) return private_key.status();
  absl::StatusOr<std::string> of = ClusterOfCa(*cert);
  if (!of.ok()) return absl::InvalidArgumentError(absl::StrCat(crt, ": ", of.status().message()));
  if (*of != cluster) {
    return absl::InvalidArgumentError(absl::StrCat(crt, " is the CA of cluster \"", *of,
                                                   "\", not \"", cluster, "\""));
  }
  return PemPair{*std::move(cert), *std::move(private_key)};
}

// The node certificates of the folder: NAME.crt, NAME not a CA file, that
// name a cloudha node. Sorted by name.
std::vector<std::pair<std::string, std::string>> NodeCertificates(const std::string& out) {
  std::vector<std::pair<std::string, std::string>> found;
  DIR* dir = opendir(out.c_str());
  if (dir == nullptr) return found;
  while (dirent* entry = readdir(dir)) {
    absl::string_view name(entry->d_name);
    if (!absl::ConsumeSuffix(&name, ".crt") || CaNames().count(std::string(name)) > 0) continue;
    absl::StatusOr<std::string> pem = ReadSmallFile(absl::StrCat(out, "/", entry->d_name));
    if (!pem.ok() || !IdentityFromCertificatePem(*pem).ok()) continue;
    found.emplace_back(std::string(name), *std::move(pem));
  }
  closedir(dir);
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

int RunCertsInit(const CertsInitOptions& options) {
  auto fail = [](const std::string& message) { return Fail("init", message); };
  if (absl::Status s = ValidateName("--cluster", options.cluster); !s.ok()) {
    return fail(std::string(s.message()));
  }
  if (options.nodes.empty()) return fail("--nodes names no node");
  std::set<std::string> unique;
  for (const std::string& node : options.nodes) {
    if (absl::Status s = ValidateName("node", node); !s.ok()) return fail(std::string(s.message()));
    if (node == "ca" || CaNames().count(node) > 0) {
      return fail(absl::StrCat("\"", node, "\" cannot be a node id (it names the CA files)"));
    }
    if (!unique.insert(node).second) {
      return fail(absl::StrCat("node \"", node, "\" is named twice"));
    }
  }
  if (options.days < 1 || options.days > 36500) {
    return fail(absl::StrCat("--days must be 1..36500, got ", options.days));
  }
  if (options.ca != "current" && options.ca != "next") {
    return fail(absl::StrCat("--ca must be current or next, got \"", options.ca, "\""));
  }
  const bool next = options.ca == "next";
  if (next && options.new_ca) return fail("--ca next and --new-ca do not go together");
  // Like `mkdir -p`: `--out /etc/cloudha/certs` works on a fresh machine.
  if (absl::Status s = MakeDirectories(options.out, 0755); !s.ok()) {
    return fail(std::string(s.message()));
  }

  const Folder folder(options.out);
  const std::string& ca_crt = folder.ca_crt;
  const std::string& ca_key = folder.ca_key;
  const absl::Time now = absl::Now();
  // An hour of slack for peers whose clocks run a little behind.
  const Validity validity{now - absl::Hours(1), absl::Hours(24) * options.days};
  const Overwrite overwrite = options.force ? Overwrite::kReplace : Overwrite::kRefuse;
  const bool rotating = Exists(folder.next_crt);

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
    return fail(absl::StrCat(absl::StrJoin(existing, ", "),
                             " already exist; nothing was written (use --force to replace)"));
  }
  if (next && (!Exists(folder.next_crt) || !Exists(folder.next_key))) {
    return fail(absl::StrCat("--ca next: no CA rotation is under way (", folder.next_crt, " or ",
                             folder.next_key, " is missing; `cloudha certs rotate-ca --out ",
                             options.out, "` starts one); nothing was written"));
  }
  if (options.new_ca && rotating) {
    return fail(absl::StrCat("a CA rotation is under way (", folder.next_crt,
                             " exists); finish it with `cloudha certs retire-ca` before making "
                             "another CA; nothing was written"));
  }
  // --force replaces node files, never the CA: a new CA would leave every
  // other node's certificate unverifiable. Only --new-ca makes one.
  bool reuse_ca = !options.new_ca && Exists(ca_crt) && Exists(ca_key);
  if (!next && !options.new_ca && !reuse_ca && (Exists(ca_crt) || Exists(ca_key))) {
    return fail(absl::StrCat("only one of ", ca_crt, " and ", ca_key,
                             " exists; nothing was written (restore the other, or use --new-ca "
                             "to make a new CA and reissue every node)"));
  }
  if (options.new_ca && !options.force && (Exists(ca_crt) || Exists(ca_key))) {
    return fail(absl::StrCat(ca_crt, " exists; nothing was written (--new-ca replaces it only "
                             "with --force, and then every node needs a new certificate)"));
  }

  PemPair ca;
  if (next) {
    absl::StatusOr<PemPair> read = ReadCa(folder.next_crt, folder.next_key, options.cluster);
    if (!read.ok()) return fail(absl::StrCat(read.status().message(), "; nothing was written"));
    ca = *std::move(read);
    std::cout << "using the new CA of the rotation " << folder.next_crt << "\n";
  } else if (reuse_ca) {
    absl::StatusOr<PemPair> read = ReadCa(ca_crt, ca_key, options.cluster);
    if (!read.ok()) return fail(absl::StrCat(read.status().message(), "; nothing was written"));
    ca = *std::move(read);
    std::cout << "using the existing CA " << ca_crt << "\n";
    if (rotating) {
      std::cerr << "cloudha certs init: note: a CA rotation is under way (" << folder.next_crt
                << " exists): certificates of " << ca_crt
                << " stop being trusted at `cloudha certs retire-ca`; --ca next issues them "
                   "under the new CA\n";
    }
  } else {
    absl::StatusOr<PemPair> made = CreateClusterCa(options.cluster, validity);
    if (!made.ok()) return fail(std::string(made.status().message()));
    ca = *made;
  }

  std::vector<std::pair<std::string, PemPair>> issued;
  for (const std::string& node : options.nodes) {
    absl::StatusOr<PemPair> pair = IssueNodeCertificate(ca, {options.cluster, node}, validity);
    if (!pair.ok()) {
      return fail(absl::StrCat("node \"", node, "\": ", pair.status().message()));
    }
    issued.emplace_back(node, *pair);
  }

  const bool new_ca_files = !next && !reuse_ca;
  auto write = [&](const std::string& path, const std::string& content, int mode) {
    absl::Status s = WriteFileAtomically(path, content, mode,
                                         path == ca_crt || path == ca_key
                                             ? (options.new_ca && options.force ? Overwrite::kReplace
                                                                                : Overwrite::kRefuse)
                                             : overwrite);
    if (!s.ok()) std::cerr << "cloudha certs init: " << s.message() << "\n";
    return s.ok();
  };
  if (new_ca_files) {
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
  if (new_ca_files) {
    std::cout << "keep " << ca_key
              << " offline: only `cloudha certs init` needs it, to add nodes later\n";
  }
  return 0;
}

int RunCertsRotateCa(const CertsRotateOptions& options) {
  auto fail = [](const std::string& message) { return Fail("rotate-ca", message); };
  if (options.days < 1 || options.days > 36500) {
    return fail(absl::StrCat("--days must be 1..36500, got ", options.days));
  }
  const Folder folder(options.out);
  absl::StatusOr<std::string> current = ReadSmallFile(folder.ca_crt);
  if (!current.ok()) {
    return fail(absl::StrCat(current.status().message(),
                             " (a rotation starts from the CA `cloudha certs init` made)"));
  }
  absl::StatusOr<std::vector<TrustedCa>> cas = CheckCaBundle(*current);
  if (!cas.ok()) return fail(absl::StrCat(folder.ca_crt, ": ", cas.status().message()));
  if (cas->size() != 1) {
    return fail(absl::StrCat(folder.ca_crt, " holds ", cas->size(),
                             " certificates; it must be the one CA that signs"));
  }
  absl::StatusOr<std::string> cluster = ClusterOfCa(*current);
  if (!cluster.ok()) return fail(absl::StrCat(folder.ca_crt, ": ", cluster.status().message()));
  std::vector<std::string> existing;
  for (const std::string* path : {&folder.next_crt, &folder.next_key, &folder.bundle}) {
    if (Exists(*path)) existing.push_back(*path);
  }
  if (!existing.empty() && !options.force) {
    return fail(absl::StrCat(
        absl::StrJoin(existing, ", "),
        " already exist: a rotation is under way (finish it with `cloudha certs retire-ca`, or "
        "start it over with --force: nodes given the old ca-bundle.crt or certificates of the "
        "old ca-next.crt then need new ones); nothing was written"));
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<PemPair> next =
      CreateClusterCa(*cluster, {now - absl::Hours(1), absl::Hours(24) * options.days});
  if (!next.ok()) return fail(std::string(next.status().message()));
  // The current CA as its file holds it, then the new one.
  std::string bundle = *current;
  if (!absl::EndsWith(bundle, "\n")) bundle += "\n";
  bundle += next->cert_pem;
  if (absl::StatusOr<std::vector<TrustedCa>> both = CheckCaBundle(bundle); !both.ok()) {
    return fail(absl::StrCat("the bundle: ", both.status().message()));
  }
  const Overwrite overwrite = options.force ? Overwrite::kReplace : Overwrite::kRefuse;
  struct File {
    const std::string& path;
    const std::string& content;
    int mode;
  };
  for (const File& file : {File{folder.next_key, next->key_pem, 0600},
                           File{folder.next_crt, next->cert_pem, 0644},
                           File{folder.bundle, bundle, 0644}}) {
    if (absl::Status s = WriteFileAtomically(file.path, file.content, file.mode, overwrite);
        !s.ok()) {
      return fail(std::string(s.message()));
    }
  }
  absl::StatusOr<std::string> old_fp = CertificateFingerprint(*current);
  absl::StatusOr<std::string> new_fp = CertificateFingerprint(next->cert_pem);
  std::vector<std::string> nodes;
  for (const auto& [name, pem] : NodeCertificates(options.out)) nodes.push_back(name);
  const std::string node_list = nodes.empty() ? "NODE,..." : absl::StrJoin(nodes, ",");
  std::cout << "wrote " << folder.next_crt << " and " << folder.next_key << " (the new CA "
            << new_fp.value_or("?") << " of cluster " << *cluster << ", " << options.days
            << " days) and " << folder.bundle << " (the current CA " << old_fp.value_or("?")
            << " and the new one)\n"
            << "next, one step at a time, each on every node before the next "
               "(docs/security.md, \"Rotating the CA\"):\n"
            << "  1. install " << folder.bundle
            << " as tls.ca_file on every node; `cloudha status` shows \"tls trusts 2 CAs\"\n"
            << "  2. cloudha certs init --cluster " << *cluster << " --nodes " << node_list
            << " --out " << options.out
            << " --ca next --force, and install each node's new certificate and key\n"
            << "  3. cloudha certs retire-ca --out " << options.out << ", and install "
            << folder.ca_crt << " (then the new CA alone) as tls.ca_file on every node\n";
  return 0;
}

int RunCertsRetireCa(const CertsRetireOptions& options) {
  auto fail = [](const std::string& message) { return Fail("retire-ca", message); };
  const Folder folder(options.out);
  for (const std::string* path : {&folder.ca_crt, &folder.next_crt, &folder.next_key}) {
    if (!Exists(*path)) {
      return fail(absl::StrCat(*path, " does not exist: ",
                               path == &folder.ca_crt ? "nothing to retire"
                                                      : "no CA rotation is under way (`cloudha "
                                                        "certs rotate-ca` starts one)",
                               "; nothing was changed"));
    }
  }
  absl::StatusOr<std::string> current = ReadSmallFile(folder.ca_crt);
  if (!current.ok()) return fail(std::string(current.status().message()));
  absl::StatusOr<std::string> next = ReadSmallFile(folder.next_crt);
  if (!next.ok()) return fail(std::string(next.status().message()));
  absl::StatusOr<std::string> old_fp = CertificateFingerprint(*current);
  if (!old_fp.ok()) return fail(absl::StrCat(folder.ca_crt, ": ", old_fp.status().message()));
  absl::StatusOr<std::string> new_fp = CertificateFingerprint(*next);
  if (!new_fp.ok()) return fail(absl::StrCat(folder.next_crt, ": ", new_fp.status().message()));

  // Every node certificate of the folder must be the new CA's by now.
  std::vector<std::string> stale;
  std::vector<std::string> stale_nodes;
  for (const auto& [name, pem] : NodeCertificates(options.out)) {
    absl::StatusOr<bool> by_next = SignedBy(pem, *next);
    if (by_next.ok() && *by_next) continue;
    stale.push_back(absl::StrCat(options.out, "/", name, ".crt"));
    stale_nodes.push_back(name);
  }
  if (!stale.empty() && !options.force) {
    absl::StatusOr<std::string> cluster = ClusterOfCa(*next);
    return fail(absl::StrCat(
        absl::StrJoin(stale, ", "), stale.size() == 1 ? " is" : " are",
        " not issued by the new CA (", *new_fp, "); reissue ",
        stale.size() == 1 ? "it" : "them", " first (cloudha certs init --cluster ",
        cluster.value_or("CLUSTER"), " --nodes ", absl::StrJoin(stale_nodes, ","), " --out ",
        options.out,
        " --ca next --force) and install them on their nodes, or retire anyway with --force "
        "(their nodes are then refused by every peer that installed the new ca.crt); nothing "
        "was changed"));
  }

  // SHA256:0123... -> retired-ca-0123...
  const std::string retired =
      absl::StrCat(options.out, "/retired-ca-", absl::StripPrefix(*old_fp, "SHA256:"));
  if (Exists(retired)) {
    return fail(absl::StrCat(retired, " exists; nothing was changed (move it away first)"));
  }
  if (absl::Status s = MakeDirectories(retired, 0700); !s.ok()) {
    return fail(std::string(s.message()));
  }
  std::vector<std::pair<std::string, std::string>> moves;
  for (const std::string* path : {&folder.ca_key, &folder.ca_crt, &folder.bundle}) {
    if (Exists(*path)) {
      moves.emplace_back(*path, absl::StrCat(retired, path->substr(options.out.size())));
    }
  }
  moves.emplace_back(folder.next_key, folder.ca_key);
  moves.emplace_back(folder.next_crt, folder.ca_crt);
  std::vector<std::string> done;
  for (const auto& [from, to] : moves) {
    // Never onto an existing file.
    if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
      return fail(absl::StrCat("cannot move ", from, " to ", to, ": ", strerror(errno),
                               done.empty() ? "" : absl::StrCat("; done so far: ",
                                                                absl::StrJoin(done, "; ")),
                               "; finish by hand"));
    }
    done.push_back(absl::StrCat(from, " -> ", to));
  }
  std::cout << "retired the CA " << *old_fp << " to " << retired << "/\n"
            << folder.ca_crt << " and " << folder.ca_key << " are now the CA " << *new_fp
            << "\nnext: install " << folder.ca_crt
            << " as tls.ca_file on every node (each agent takes it without a restart; "
               "`cloudha status` shows \"tls trusts 1 CA\"), and keep "
            << folder.ca_key << " offline\n";
  if (!stale.empty()) {
    std::cerr << "cloudha certs retire-ca: warning: " << absl::StrJoin(stale, ", ")
              << " not issued by the new CA: their nodes will be refused\n";
  }
  return 0;
}

}  // namespace cloudha
