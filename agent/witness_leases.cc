#include "agent/witness_leases.h"

#include <dirent.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/log.h"
#include "base/secure_file.h"
#include "crypto/node_identity.h"

namespace cloudha {

namespace {
constexpr absl::string_view kSuffix = ".lease";
}  // namespace

absl::StatusOr<std::unique_ptr<WitnessLeases>> WitnessLeases::Open(const std::string& state_dir,
                                                                   std::string witness_id,
                                                                   Clock* clock) {
  if (absl::Status s = MakeDirectories(state_dir, 0700); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("witness state_dir ", state_dir, ": ", s.message()));
  }
  std::unique_ptr<WitnessLeases> leases(
      new WitnessLeases(state_dir, std::move(witness_id), clock));
  DIR* dir = opendir(state_dir.c_str());
  if (dir == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read folder ", state_dir));
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (absl::EndsWith(name, kSuffix)) names.push_back(name);
  }
  closedir(dir);
  const absl::Time now = clock->Now();
  absl::MutexLock lock(&leases->mu_);
  for (const std::string& name : names) {
    const std::string cluster = name.substr(0, name.size() - kSuffix.size());
    const std::string path = absl::StrCat(state_dir, "/", name);
    absl::StatusOr<std::string> text = ReadSmallFile(path);
    if (!text.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("witness lease file ", text.status().message()));
    }
    Lease lease;
    int64_t ttl_ms = -1;
    bool have_fence = false;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
      if (kv.size() != 2) continue;
      if (kv[0] == "fence") have_fence = absl::SimpleAtoi(kv[1], &lease.fence);
      if (kv[0] == "holder") lease.holder = kv[1];
      if (kv[0] == "ttl_ms" && !absl::SimpleAtoi(kv[1], &ttl_ms)) ttl_ms = -1;
    }
    if (!ValidateName("cluster", cluster).ok() || !have_fence || ttl_ms < 0 ||
        !ValidateName("holder", lease.holder).ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "witness lease file ", path,
          " is corrupt (want lines \"fence N\", \"holder NODE\", \"ttl_ms N\"); the fencing "
          "counter must never go back, so the witness does not start without it: restore the "
          "file or, knowing every node stepped down, remove it"));
    }
    lease.ttl = absl::Milliseconds(ttl_ms);
    // Held, as far as the witness can know, for its whole ttl from now.
    lease.expires = now + lease.ttl;
    leases->leases_[cluster] = lease;
    LogEvent(LogLevel::kInfo, "witness_lease_loaded",
             {{"cluster", cluster}, {"holder", lease.holder}, {"fence", lease.fence}});
  }
  return leases;
}

std::string WitnessLeases::FileOf(const std::string& cluster) const {
  return absl::StrCat(state_dir_, "/", cluster, kSuffix);
}

absl::Status WitnessLeases::Store(const std::string& cluster, const Lease& lease) const {
  return WriteFileAtomically(FileOf(cluster),
                             absl::StrCat("fence ", lease.fence, "\nholder ", lease.holder,
                                          "\nttl_ms ", absl::ToInt64Milliseconds(lease.ttl), "\n"),
                             0600, Overwrite::kReplace);
}

v1::LeaseReply WitnessLeases::Reply(const std::string& cluster, const Lease& lease,
                                    absl::Time now) const {
  v1::LeaseReply r;
  r.set_cluster(cluster);
  r.set_witness(witness_id_);
  r.set_fence(lease.fence);
  if (now < lease.expires) {
    r.set_holder(lease.holder);
    r.set_remaining_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(lease.expires - now) + 1));
  }
  return r;
}

absl::StatusOr<v1::LeaseReply> WitnessLeases::Acquire(const std::string& cluster,
                                                      const std::string& node, absl::Duration ttl,
                                                      uint64_t epoch, bool renew,
                                                      uint64_t fence) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Lease& current = leases_[cluster];
  const bool live = now < current.expires;
  if (live && current.holder != node) {
    v1::LeaseReply r = Reply(cluster, current, now);
    r.set_granted(false);
    return r;
  }
  if (live && renew && fence == current.fence) {
    // A renewal: same fence, nothing to store.
    current.expires = now + ttl;
    current.ttl = ttl;
  } else {
    Lease next;
    next.holder = node;
    next.fence = current.fence + 1;
    next.ttl = ttl;
    next.expires = now + ttl;
    if (absl::Status s = Store(cluster, next); !s.ok()) {
      LogEvent(LogLevel::kError, "witness_store_failed",
               {{"cluster", cluster}, {"node", node}, {"reason", s.message()}});
      return absl::UnavailableError(absl::StrCat(
          "the witness could not store the grant (", s.message(), "); nothing was granted"));
    }
    LogEvent(LogLevel::kInfo, "witness_lease_granted",
             {{"cluster", cluster},
              {"node", node},
              {"fence", next.fence},
              {"epoch", epoch},
              {"previous", current.holder}});
    current = next;
  }
  v1::LeaseReply r = Reply(cluster, current, now);
  r.set_granted(true);
  r.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
  return r;
}

v1::LeaseReply WitnessLeases::Release(const std::string& cluster, const std::string& node,
                                      uint64_t epoch, uint64_t fence) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  auto it = leases_.find(cluster);
  if (it == leases_.end()) {
    v1::LeaseReply r;
    r.set_cluster(cluster);
    r.set_witness(witness_id_);
    return r;
  }
  Lease& lease = it->second;
  if (fence != 0 && lease.fence == fence && lease.holder == node && now < lease.expires) {
    lease.expires = now;
    LogEvent(LogLevel::kInfo, "witness_lease_released",
             {{"cluster", cluster}, {"node", node}, {"fence", lease.fence}, {"epoch", epoch}});
  }
  return Reply(cluster, lease, now);
}

v1::LeaseReply WitnessLeases::Peek(const std::string& cluster) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(cluster);
  if (it == leases_.end()) {
    v1::LeaseReply r;
    r.set_cluster(cluster);
    r.set_witness(witness_id_);
    return r;
  }
  return Reply(cluster, it->second, clock_->Now());
}

}  // namespace cloudha
