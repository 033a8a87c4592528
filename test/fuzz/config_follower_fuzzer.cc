// Fuzzes the secondary's side of config replication (sync/config_follower.h)
// with the messages a primary's SyncConfig stream delivers, into a real
// ConfigStore (SQLite) through a real ConfigCommitter.
//
// The store lives in the process's scratch folder (tmpfs when there is
// one) and is opened once: every input starts from the same content (the
// baseline below, restored by one commit), only its revision number grows.
// This node's own exclusion list is {"local.**", "system.hostname"}.
//
// Input: records (fuzz_support.h), by kind:
//   0 a stream opens: payload[0] bit 0 picks the primary ("b" or "c"), then
//     a v1::ConfigSyncOpen
//   1 a message: payload[0] picks the stream (the newest, the one before,
//     or one that never was), then a v1::ConfigSyncMessage
//   2 the stream picked by payload[0] closes
//   3 Supersede (this node became primary, or follows another)
//   4 MarkUnsynced (a hello's checksum disagreed)
//   5 still_follows answers payload[0] bit 0 ? ABORTED : OK from now on
//   6 the clock moves u16 milliseconds
//   7 reads: in sync with, following, revision, stats
// Checks the header's promises: paths this node excludes are never written,
// whatever the primary sends; a refused message (INVALID_ARGUMENT,
// ABORTED, FAILED_PRECONDITION) applies nothing; and a node is in sync only
// with the primary it follows.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/fake_clock.h"
#include "sync/config_committer.h"
#include "sync/config_follower.h"
#include "sync/config_store.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

const std::map<std::string, std::string>& Baseline() {
  static const auto* const baseline = new std::map<std::string, std::string>{
      {"firewall.enabled", "yes"},
      {"firewall.policy.10.action", "accept"},
      {"firewall.policy.20.action", "drop"},
      {"local.note", "this node only"},
      {"local.deep.a", "1"},
      {"system.hostname", "fw-b"},
      {"system.dns", "198.18.0.53"},
  };
  return *baseline;
}

ExclusionSet Own() {
  absl::StatusOr<ExclusionSet> own = ExclusionSet::Create({"local.**", "system.hostname"});
  if (!own.ok()) fuzz::Fail(own.status().ToString());
  return *own;
}

// What this node keeps to itself: the entries its own list excludes.
std::map<std::string, std::string> OwnEntries(const ConfigStore& store, const ExclusionSet& own) {
  std::map<std::string, std::string> out;
  for (const StoredEntry& e : store.List("")) {
    if (own.Excludes(e.path)) out[e.path] = e.value;
  }
  return out;
}

struct Fixture {
  FakeClock clock;
  std::unique_ptr<ConfigStore> store;
  ExclusionSet own = Own();
  std::map<std::string, std::string> own_baseline;
  std::string replaced_file;

  Fixture() {
    ConfigStore::Options options;
    options.clock = &clock;
    absl::StatusOr<std::unique_ptr<ConfigStore>> opened =
        ConfigStore::Open(absl::StrCat(fuzz::ScratchDir(), "/config.db"), std::move(options));
    if (!opened.ok()) fuzz::Fail(opened.status().ToString());
    store = *std::move(opened);
    replaced_file = absl::StrCat(fuzz::ScratchDir(), "/replaced.jsonl");
    Reset();
    own_baseline = OwnEntries(*store, own);
  }

  // Back to the baseline content, in one commit.
  void Reset() {
    std::vector<ConfigChange> changes;
    for (const StoredEntry& e : store->List("")) {
      if (Baseline().count(e.path) == 0) changes.push_back({e.path, std::nullopt});
    }
    for (const auto& [path, value] : Baseline()) changes.push_back({path, value});
    absl::StatusOr<ConfigCommitResult> r = store->Apply(changes);
    if (!r.ok()) fuzz::Fail(r.status().ToString());
    int fd = open(replaced_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
};

void Run(const uint8_t* data, size_t size) {
  static Fixture* const fixture = new Fixture();
  Fixture& f = *fixture;
  f.Reset();
  ConfigCommitter committer(f.store.get(), nullptr, nullptr);
  bool refuse_writes = false;
  ConfigFollowerOptions options;
  options.own = f.own;
  options.replaced_file = f.replaced_file;
  options.still_follows = [&refuse_writes](const std::string& primary) -> absl::Status {
    if (refuse_writes) return absl::AbortedError(absl::StrCat("not following ", primary));
    return absl::OkStatus();
  };
  options.on_primary_exclusions = [](const std::string&, const std::vector<std::string>&) {};
  options.note = [](const std::string&) {};
  ConfigFollower follower(std::move(options), &committer, &f.clock);
  std::vector<uint64_t> streams;

  auto pick = [&](uint64_t selector) { return fuzz::PickStream(streams, selector); };

  fuzz::Records records(data, size);
  uint8_t kind = 0;
  absl::string_view payload;
  while (records.Next(&kind, &payload)) {
    const uint64_t selector = fuzz::ReadUint(payload, 0, 1);
    const absl::string_view message = payload.empty() ? payload : payload.substr(1);
    switch (kind % 8) {
      case 0: {
        v1::ConfigSyncOpen open;
        if (!open.ParseFromArray(message.data(), static_cast<int>(message.size()))) break;
        absl::StatusOr<ConfigFollower::Opened> opened =
            follower.Open((selector & 1) != 0 ? "c" : "b", open);
        if (opened.ok()) {
          streams.push_back(opened->stream);
        } else {
          FUZZ_CHECK(opened.status().code() == absl::StatusCode::kInvalidArgument,
                     opened.status().ToString());
        }
        break;
      }
      case 1: {
        v1::ConfigSyncMessage m;
        if (!m.ParseFromArray(message.data(), static_cast<int>(message.size()))) break;
        const uint64_t revision = f.store->revision();
        absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply =
            follower.OnMessage(pick(selector), m);
        if (!reply.ok()) {
          const absl::StatusCode code = reply.status().code();
          if (code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kAborted ||
              code == absl::StatusCode::kFailedPrecondition) {
            FUZZ_CHECK(f.store->revision() == revision, "a refused message was applied: ",
                       reply.status().ToString());
          }
        }
        break;
      }
      case 2:
        follower.Close(pick(selector));
        break;
      case 3:
        follower.Supersede();
        break;
      case 4:
        follower.MarkUnsynced();
        break;
      case 5:
        refuse_writes = (selector & 1) != 0;
        break;
      case 6:
        f.clock.Advance(absl::Milliseconds(fuzz::ReadUint(payload, 0, 2)));
        break;
      case 7:
        (void)follower.primary_revision();
        (void)follower.stats();
        break;
    }
    FUZZ_CHECK(OwnEntries(*f.store, f.own) == f.own_baseline,
               "an entry this node excludes was written by the primary");
    const std::string synced = follower.synced_with();
    FUZZ_CHECK(synced.empty() || synced == follower.following(), "in sync with ", synced,
               " but following \"", follower.following(), "\"");
  }
}

}  // namespace
}  // namespace cloudha

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cloudha::Run(data, size);
  return 0;
}
