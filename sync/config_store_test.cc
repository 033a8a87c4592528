#include "sync/config_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/fake_clock.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;

// A fresh directory under TEST_TMPDIR.
std::string NewDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(base != nullptr ? base : "/tmp", "/config_store_XXXXXX");
  if (mkdtemp(path.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << path << ": " << strerror(errno);
  }
  return path;
}

ConfigChange Put(std::string path, std::string value) {
  return ConfigChange{std::move(path), std::move(value)};
}
ConfigChange Del(std::string path) { return ConfigChange{std::move(path), std::nullopt}; }

// Options with a clock (the store takes wall time from it for history).
ConfigStore::Options Opts() {
  static FakeClock* clock = new FakeClock;
  ConfigStore::Options options;
  options.clock = clock;
  return options;
}

std::unique_ptr<ConfigStore> MustOpen(const std::string& file,
                                      ConfigStore::Options options = Opts()) {
  absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  return std::move(*store);
}

std::optional<std::string> ValueOf(const ConfigStore& store, absl::string_view path) {
  std::optional<StoredEntry> entry = store.Get(path);
  if (!entry.has_value()) return std::nullopt;
  return entry->value;
}

// The checksum from the header's definition, computed from scratch.
std::string ExpectedChecksum(const std::vector<StoredEntry>& entries, const ExclusionSet& excluded,
                             uint64_t* count) {
  std::string sum(32, '\0');
  *count = 0;
  for (const StoredEntry& e : entries) {
    if (excluded.Excludes(e.path)) continue;
    std::string message = absl::StrCat(e.path, std::string(1, '\0'), e.value);
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(message.data(), message.size(), hash, &len, EVP_sha256(), nullptr);
    for (size_t i = 0; i < 32; ++i) sum[i] ^= static_cast<char>(hash[i]);
    ++*count;
  }
  return sum;
}

ExclusionSet Exclusions(const std::vector<std::string>& patterns) {
  absl::StatusOr<ExclusionSet> set = ExclusionSet::Create(patterns);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : ExclusionSet();
}

off_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

class ConfigStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { file_ = NewDir() + "/config.db"; }
  std::string file_;
};

TEST_F(ConfigStoreTest, PutGetDeleteAndListSubtrees) {
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->file(), file_);
  EXPECT_EQ(store->revision(), 0u);
  EXPECT_EQ(store->size(), 0u);
  absl::StatusOr<ConfigCommitResult> r =
      store->Apply({Put("a", "1"), Put("a.b", "2"), Put("a.bc", "3"), Put("a-b", "4"),
                    Put("b", "5"), Put("a.b.c", "6")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, 1u);
  EXPECT_EQ(r->applied.size(), 6u);
  EXPECT_EQ(store->size(), 6u);

  std::optional<StoredEntry> entry = store->Get("a.b");
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->path, "a.b");
  EXPECT_EQ(entry->value, "2");
  EXPECT_EQ(entry->revision, 1u);
  EXPECT_FALSE(store->Get("a.x").has_value());

  auto paths = [&](absl::string_view prefix) {
    std::vector<std::string> out;
    for (const StoredEntry& e : store->List(prefix)) out.push_back(e.path);
    return out;
  };
  EXPECT_EQ(paths(""), (std::vector<std::string>{"a", "a-b", "a.b", "a.b.c", "a.bc", "b"}));
  EXPECT_EQ(paths("a"), (std::vector<std::string>{"a", "a.b", "a.b.c", "a.bc"}));
  EXPECT_EQ(paths("a.b"), (std::vector<std::string>{"a.b", "a.b.c"}));
  EXPECT_EQ(paths("a.b.c"), (std::vector<std::string>{"a.b.c"}));
  EXPECT_TRUE(paths("a.b.c.d").empty());
  EXPECT_TRUE(paths("c").empty());

  r = store->Apply({Del("a.b"), Put("b", "55")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->revision, 2u);
  EXPECT_FALSE(store->Get("a.b").has_value());
  EXPECT_EQ(ValueOf(*store, "b"), "55");
  EXPECT_EQ(store->Get("b")->revision, 2u);
  EXPECT_EQ(store->Get("a")->revision, 1u);
  EXPECT_EQ(paths("a.b"), (std::vector<std::string>{"a.b.c"}));
  EXPECT_EQ(store->size(), 5u);
}

TEST_F(ConfigStoreTest, RevisionsAdvanceOnlyOnRealChanges) {
  std::vector<ConfigCommitResult> commits;
  ConfigStore::Options options = Opts();
  options.on_commit = [&](const ConfigCommitResult& r) { commits.push_back(r); };
  std::unique_ptr<ConfigStore> store = MustOpen(file_, options);
  ASSERT_NE(store, nullptr);

  absl::StatusOr<ConfigCommitResult> r = store->Apply({Put("x", "1")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 1u);
  ASSERT_EQ(r->applied.size(), 1u);
  EXPECT_EQ(r->applied[0].path, "x");
  EXPECT_EQ(r->applied[0].old_value, std::nullopt);
  EXPECT_EQ(r->applied[0].new_value, "1");

  // The same value again, a delete of an absent path, an empty call.
  for (const std::vector<ConfigChange>& noop :
       {std::vector<ConfigChange>{Put("x", "1")}, std::vector<ConfigChange>{Del("y")},
        std::vector<ConfigChange>{}, std::vector<ConfigChange>{Put("y", "2"), Del("y")}}) {
    r = store->Apply(noop);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->revision, 0u);
    EXPECT_TRUE(r->applied.empty());
  }
  EXPECT_EQ(store->revision(), 1u);
  EXPECT_EQ(commits.size(), 1u);

  // Only the real change of a mixed batch; later changes to a path win.
  r = store->Apply({Put("x", "1"), Put("z", "a"), Put("z", "b"), Del("nothing")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 2u);
  ASSERT_EQ(r->applied.size(), 1u);
  EXPECT_EQ(r->applied[0].path, "z");
  EXPECT_EQ(r->applied[0].new_value, "b");
  EXPECT_EQ(ValueOf(*store, "z"), "b");

  r = store->Apply({Put("x", "2"), Del("z")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 3u);
  ASSERT_EQ(r->applied.size(), 2u);
  EXPECT_EQ(r->applied[0].old_value, "1");
  EXPECT_EQ(r->applied[0].new_value, "2");
  EXPECT_EQ(r->applied[1].old_value, "b");
  EXPECT_EQ(r->applied[1].new_value, std::nullopt);

  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[0].revision, 1u);
  EXPECT_EQ(commits[1].revision, 2u);
  EXPECT_EQ(commits[2].revision, 3u);
  EXPECT_EQ(commits[2].applied.size(), 2u);
}

TEST_F(ConfigStoreTest, ValuesAreKeptByteForByte) {
  const std::string odd("a\0b\xff\n\"'", 7);
  {
    std::unique_ptr<ConfigStore> store = MustOpen(file_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Apply({Put("odd", odd), Put("empty", "")}).ok());
    EXPECT_EQ(ValueOf(*store, "odd"), odd);
    EXPECT_EQ(ValueOf(*store, "empty"), "");
  }
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ValueOf(*store, "odd"), odd);
  EXPECT_EQ(ValueOf(*store, "empty"), "");  // empty, not deleted
  std::vector<ConfigHistoryRecord> history = store->History(10);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].value, odd);
  EXPECT_EQ(history[0].value, "");
}

TEST_F(ConfigStoreTest, HistoryKeepsTheNewestThousandChanges) {
  FakeClock clock;
  ConfigStore::Options options = Opts();
  options.clock = &clock;
  int64_t now = absl::ToUnixMillis(clock.WallNow());
  {
    std::unique_ptr<ConfigStore> store = MustOpen(file_, options);
    ASSERT_NE(store, nullptr);
    // Three commits of 600 changes: the last 400 of the second and all of
    // the third remain.
    for (int commit = 0; commit < 3; ++commit) {
      std::vector<ConfigChange> changes;
      for (int i = 0; i < 600; ++i)
        changes.push_back(Put(absl::StrCat("p.", i), absl::StrCat(commit)));
      ASSERT_TRUE(store->Apply(changes).ok());
      clock.Advance(absl::Seconds(1));
      now += 1000;
    }
    ASSERT_TRUE(store->Apply({Del("p.0")}).ok());
    std::vector<ConfigHistoryRecord> history = store->History(5000);
    ASSERT_EQ(history.size(), kConfigHistoryLimit);
    EXPECT_EQ(history[0].revision, 4u);
    EXPECT_EQ(history[0].path, "p.0");
    EXPECT_EQ(history[0].value, std::nullopt);
    EXPECT_EQ(history[0].unix_ms, now);
    EXPECT_EQ(history[1].revision, 3u);
    EXPECT_EQ(history[1].path, "p.599");
    EXPECT_EQ(history[1].value, "2");
    EXPECT_EQ(history[600].revision, 3u);
    EXPECT_EQ(history[600].path, "p.0");
    EXPECT_EQ(history[601].revision, 2u);
    EXPECT_EQ(history[601].path, "p.599");
    EXPECT_EQ(history.back().revision, 2u);
    EXPECT_EQ(history.back().path, "p.201");
    EXPECT_EQ(store->History(3).size(), 3u);
    EXPECT_TRUE(store->History(0).empty());
  }
  // Trimmed on disk, not only in the answer.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM history", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(stmt, 0), static_cast<int64_t>(kConfigHistoryLimit));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(ConfigStoreTest, ReopenKeepsDataAndRevision) {
  std::string root_before;
  {
    std::unique_ptr<ConfigStore> store = MustOpen(file_);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Apply({Put("a.b", "1"), Put("c", "2")}).ok());
    ASSERT_TRUE(store->Apply({Put("a.b", "3"), Del("c")}).ok());
    root_before = store->Checksum("", ExclusionSet()).checksum;
  }
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->revision(), 2u);
  EXPECT_EQ(store->size(), 1u);
  EXPECT_EQ(ValueOf(*store, "a.b"), "3");
  EXPECT_EQ(store->Get("a.b")->revision, 2u);
  EXPECT_FALSE(store->Get("c").has_value());
  EXPECT_EQ(store->Checksum("", ExclusionSet()).checksum, root_before);
  absl::StatusOr<ConfigCommitResult> r = store->Apply({Put("d", "4")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 3u);
}

TEST_F(ConfigStoreTest, InvalidInputIsRejectedWithNothingApplied) {
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<ConfigCommitResult> r = store->Apply({Put("good", "1"), Put("bad..path", "2")});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("change 2 of 2"));
  EXPECT_THAT(r.status().message(), HasSubstr("bad..path"));

  r = store->Apply({Put("good", "1"), Put("big", std::string(kMaxConfigValueBytes + 1, 'v'))});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("big"));
  EXPECT_THAT(r.status().message(), HasSubstr("1048577 bytes"));

  r = store->Apply({Del("")});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();

  EXPECT_EQ(store->revision(), 0u);
  EXPECT_EQ(store->size(), 0u);
  EXPECT_TRUE(store->History(10).empty());

  // The largest value is accepted.
  r = store->Apply({Put("big", std::string(kMaxConfigValueBytes, 'v'))});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store->Get("big")->value.size(), kMaxConfigValueBytes);
}

TEST_F(ConfigStoreTest, EqualContentHasEqualChecksumsWhateverTheOrder) {
  std::string dir = NewDir();
  std::unique_ptr<ConfigStore> a = MustOpen(dir + "/a.db");
  std::unique_ptr<ConfigStore> b = MustOpen(dir + "/b.db");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const ExclusionSet none;

  SubtreeChecksum empty = a->Checksum("", none);
  EXPECT_EQ(empty.checksum, std::string(32, '\0'));
  EXPECT_EQ(empty.count, 0u);

  ASSERT_TRUE(a->Apply({Put("x.1", "a"), Put("x.2", "b"), Put("y", "c")}).ok());
  // b: another order, other commits, and detours.
  ASSERT_TRUE(b->Apply({Put("y", "old"), Put("tmp", "t")}).ok());
  ASSERT_TRUE(b->Apply({Put("x.2", "b"), Put("y", "c")}).ok());
  ASSERT_TRUE(b->Apply({Del("tmp"), Put("x.1", "a")}).ok());

  for (const char* prefix : {"", "x", "x.1", "y", "nothing"}) {
    SubtreeChecksum ca = a->Checksum(prefix, none);
    SubtreeChecksum cb = b->Checksum(prefix, none);
    EXPECT_EQ(ca.prefix, prefix);
    EXPECT_FALSE(ca.exact);
    EXPECT_EQ(ca.checksum, cb.checksum) << prefix;
    EXPECT_EQ(ca.count, cb.count) << prefix;
  }
  EXPECT_EQ(a->Checksum("", none).count, 3u);
  EXPECT_EQ(a->Checksum("x", none).count, 2u);
  uint64_t count = 0;
  EXPECT_EQ(a->Checksum("", none).checksum, ExpectedChecksum(a->List(""), none, &count));
  EXPECT_EQ(a->Checksum("x", none).checksum, ExpectedChecksum(a->List("x"), none, &count));

  // A different value changes it.
  ASSERT_TRUE(b->Apply({Put("x.1", "A")}).ok());
  EXPECT_NE(a->Checksum("", none).checksum, b->Checksum("", none).checksum);
  EXPECT_NE(a->Checksum("x", none).checksum, b->Checksum("x", none).checksum);
  EXPECT_EQ(a->Checksum("y", none).checksum, b->Checksum("y", none).checksum);
}

TEST_F(ConfigStoreTest, ExcludedPathsDoNotAffectChecksums) {
  std::string dir = NewDir();
  std::unique_ptr<ConfigStore> a = MustOpen(dir + "/a.db");
  std::unique_ptr<ConfigStore> b = MustOpen(dir + "/b.db");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ExclusionSet local = Exclusions({"system.hostname", "system.interface.**"});
  // Root sums are cached from here on: later Applies update them.
  EXPECT_EQ(a->Checksum("", local).checksum, b->Checksum("", local).checksum);

  ASSERT_TRUE(a->Apply({Put("fw.rule", "allow"), Put("system.hostname", "node-a"),
                        Put("system.interface.eth0.ip", "10.0.0.1"), Put("system.interface", "x")})
                  .ok());
  ASSERT_TRUE(b->Apply({Put("fw.rule", "allow"), Put("system.hostname", "node-b"),
                        Put("system.interface.eth1.ip", "10.0.0.2"), Put("system.interface", "x")})
                  .ok());
  for (const char* prefix : {"", "system", "system.interface", "fw"}) {
    SubtreeChecksum ca = a->Checksum(prefix, local);
    SubtreeChecksum cb = b->Checksum(prefix, local);
    EXPECT_EQ(ca.checksum, cb.checksum) << prefix;
    EXPECT_EQ(ca.count, cb.count) << prefix;
  }
  // "system.interface.**" leaves "system.interface" itself in.
  EXPECT_EQ(a->Checksum("", local).count, 2u);
  EXPECT_EQ(a->Checksum("system", local).count, 1u);
  EXPECT_NE(a->Checksum("", ExclusionSet()).checksum, b->Checksum("", ExclusionSet()).checksum);
  EXPECT_EQ(a->Checksum("", ExclusionSet()).count, 4u);
}

TEST_F(ConfigStoreTest, IncrementalRootChecksumsEqualAFullRecomputation) {
  std::mt19937 rng(20240601);
  const std::vector<ExclusionSet> sets = {ExclusionSet(), Exclusions({"a.**"}),
                                          Exclusions({"*.x", "b.**.y"}), Exclusions({"**"})};
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  auto random_path = [&] {
    static const char* const kSegments[] = {"a", "b", "x", "y", "a-1"};
    std::string path = kSegments[rng() % 5];
    int depth = static_cast<int>(rng() % 4);
    for (int i = 0; i < depth; ++i) absl::StrAppend(&path, ".", kSegments[rng() % 5]);
    return path;
  };
  auto check = [&](const ConfigStore& s) {
    std::vector<StoredEntry> all = s.List("");
    for (const ExclusionSet& set : sets) {
      uint64_t count = 0;
      std::string expected = ExpectedChecksum(all, set, &count);
      SubtreeChecksum root = s.Checksum("", set);
      ASSERT_EQ(root.checksum, expected);
      ASSERT_EQ(root.count, count);
    }
  };
  check(*store);  // caches every root before the changes
  for (int round = 0; round < 200; ++round) {
    std::vector<ConfigChange> changes;
    int n = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      if (rng() % 3 == 0) {
        changes.push_back(Del(random_path()));
      } else {
        changes.push_back(Put(random_path(), absl::StrCat(rng() % 4)));
      }
    }
    ASSERT_TRUE(store->Apply(changes).ok());
    if (round % 10 == 0) check(*store);
  }
  check(*store);
  ASSERT_GT(store->size(), 20u);
  std::vector<SubtreeChecksum> before;
  for (const ExclusionSet& set : sets) before.push_back(store->Checksum("", set));
  store.reset();
  store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  for (size_t i = 0; i < sets.size(); ++i) {
    EXPECT_EQ(store->Checksum("", sets[i]).checksum, before[i].checksum);
  }
}

TEST_F(ConfigStoreTest, RootChecksumsStayRightForManyExclusionSets) {
  // More sets than the store keeps root sums for: evicted ones are
  // recomputed, kept ones updated.
  std::vector<ExclusionSet> sets;
  for (int i = 0; i < 40; ++i) sets.push_back(Exclusions({absl::StrCat("k.", i % 20, ".**")}));
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  for (int round = 0; round < 5; ++round) {
    std::vector<ConfigChange> changes;
    for (int i = 0; i < 30; ++i) {
      changes.push_back(
          Put(absl::StrCat("k.", (i * 7 + round) % 25, ".v", i % 3), absl::StrCat(round)));
    }
    changes.push_back(Del(absl::StrCat("k.", round, ".v0")));
    ASSERT_TRUE(store->Apply(changes).ok());
    std::vector<StoredEntry> all = store->List("");
    for (const ExclusionSet& set : sets) {
      uint64_t count = 0;
      std::string expected = ExpectedChecksum(all, set, &count);
      SubtreeChecksum root = store->Checksum("", set);
      EXPECT_EQ(root.checksum, expected) << set.patterns()[0];
      EXPECT_EQ(root.count, count) << set.patterns()[0];
    }
  }
}

TEST_F(ConfigStoreTest, ConcurrentWritersAndReadersSeeCommitsInOrder) {
  std::vector<uint64_t> revisions;  // on_commit runs under the store's lock
  ConfigStore::Options options = Opts();
  options.on_commit = [&](const ConfigCommitResult& r) { revisions.push_back(r.revision); };
  std::unique_ptr<ConfigStore> store = MustOpen(file_, options);
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kWrites = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        EXPECT_TRUE(store->Apply({Put(absl::StrCat("t", t, ".k", i), absl::StrCat(i))}).ok());
        store->Checksum("", ExclusionSet());
        store->Children("", ExclusionSet());
        store->List(absl::StrCat("t", t));
        store->History(5);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(revisions.size(), static_cast<size_t>(kThreads * kWrites));
  for (size_t i = 0; i < revisions.size(); ++i) EXPECT_EQ(revisions[i], i + 1);
  EXPECT_EQ(store->size(), static_cast<size_t>(kThreads * kWrites));
  uint64_t count = 0;
  EXPECT_EQ(store->Checksum("", ExclusionSet()).checksum,
            ExpectedChecksum(store->List(""), ExclusionSet(), &count));
}

TEST_F(ConfigStoreTest, ChildrenListsSubtreesAndTheExactEntry) {
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store
          ->Apply({Put("a", "0"), Put("a.b", "1"), Put("a.b.x", "2"), Put("a.b-c", "3"),
                   Put("a.c", "4"), Put("a.d.secret", "5"), Put("ab", "6"), Put("z.q", "7")})
          .ok());
  ExclusionSet excluded = Exclusions({"a.d.**"});
  std::vector<SubtreeChecksum> children = store->Children("a", excluded);
  ASSERT_EQ(children.size(), 4u);
  EXPECT_EQ(children[0].prefix, "a");
  EXPECT_TRUE(children[0].exact);
  EXPECT_EQ(children[0].count, 1u);
  uint64_t count = 0;
  EXPECT_EQ(children[0].checksum, ExpectedChecksum({*store->Get("a")}, excluded, &count));
  EXPECT_EQ(children[1].prefix, "a.b");
  EXPECT_EQ(children[1].count, 2u);
  EXPECT_EQ(children[2].prefix, "a.b-c");
  EXPECT_EQ(children[2].count, 1u);
  EXPECT_EQ(children[3].prefix, "a.c");
  for (size_t i = 1; i < children.size(); ++i) {
    EXPECT_FALSE(children[i].exact);
    SubtreeChecksum subtree = store->Checksum(children[i].prefix, excluded);
    EXPECT_EQ(children[i].checksum, subtree.checksum) << children[i].prefix;
    EXPECT_EQ(children[i].count, subtree.count) << children[i].prefix;
  }

  // The root: no exact item; "a" holds everything at or below it.
  std::vector<SubtreeChecksum> top = store->Children("", excluded);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].prefix, "a");
  EXPECT_FALSE(top[0].exact);
  EXPECT_EQ(top[0].count, 5u);
  EXPECT_EQ(top[0].checksum, store->Checksum("a", excluded).checksum);
  EXPECT_EQ(top[1].prefix, "ab");
  EXPECT_EQ(top[2].prefix, "z");

  // A leaf: only the exact item. An excluded one: nothing.
  children = store->Children("a.c", excluded);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_TRUE(children[0].exact);
  EXPECT_TRUE(store->Children("a.d", excluded).empty());
  EXPECT_TRUE(store->Children("a.d.secret", excluded).empty());
  EXPECT_EQ(store->Children("a.d", ExclusionSet()).size(), 1u);
  EXPECT_TRUE(store->Children("nothing", excluded).empty());
}

TEST_F(ConfigStoreTest, SecondOpenOfTheSameFileFailsClearly) {
  std::unique_ptr<ConfigStore> first = MustOpen(file_);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Apply({Put("a", "1")}).ok());
  absl::StatusOr<std::unique_ptr<ConfigStore>> second = ConfigStore::Open(file_, Opts());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(file_));
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another process"));
  // The first is unharmed; once it is closed the file opens again.
  ASSERT_TRUE(first->Apply({Put("a", "2")}).ok());
  first.reset();
  std::unique_ptr<ConfigStore> again = MustOpen(file_);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(ValueOf(*again, "a"), "2");
}

TEST_F(ConfigStoreTest, RefusesWhatIsNotAHealthyStore) {
  std::string dir = NewDir();
  {
    std::string garbage = dir + "/garbage.db";
    std::ofstream(garbage) << "this is not a database\n" << std::string(5000, 'x');
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(garbage, Opts());
    ASSERT_FALSE(store.ok());
    EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(garbage));
    EXPECT_THAT(store.status().message(), HasSubstr("not a SQLite database"));
    EXPECT_EQ(FileSize(garbage), 23 + 5000);  // left as it was
  }
  {
    std::string missing = dir + "/no/such/dir/config.db";
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(missing, Opts());
    ASSERT_FALSE(store.ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(missing));
  }
  auto raw_sql = [](const std::string& file, const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
    sqlite3_free(error);
    sqlite3_close(db);
  };
  {
    std::string newer = dir + "/newer.db";
    ASSERT_NE(MustOpen(newer), nullptr);
    raw_sql(newer, "PRAGMA user_version = 99");
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(newer, Opts());
    ASSERT_FALSE(store.ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(store.status())) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
    EXPECT_THAT(store.status().message(), HasSubstr(newer));
  }
  {
    std::string foreign = dir + "/foreign.db";
    raw_sql(foreign, "CREATE TABLE t(x)");
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(foreign, Opts());
    ASSERT_FALSE(store.ok());
    EXPECT_THAT(store.status().message(), HasSubstr("not a config store"));
  }
  {
    // A real store with a damaged page.
    std::string corrupt = dir + "/corrupt.db";
    {
      std::unique_ptr<ConfigStore> store = MustOpen(corrupt);
      ASSERT_NE(store, nullptr);
      std::vector<ConfigChange> changes;
      for (int i = 0; i < 2000; ++i) {
        changes.push_back(Put(absl::StrCat("key.", i), std::string(100, 'v')));
      }
      ASSERT_TRUE(store->Apply(changes).ok());
    }  // closing checkpoints the WAL into the file
    off_t size = FileSize(corrupt);
    ASSERT_GT(size, 20 * 4096);
    int fd = open(corrupt.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string junk(4096, '\xa5');
    for (off_t page = 3; page * 4096 < size; page += 4) {
      ASSERT_EQ(pwrite(fd, junk.data(), junk.size(), page * 4096), 4096);
    }
    close(fd);
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(corrupt, Opts());
    ASSERT_FALSE(store.ok());
    EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr("is corrupt"));
    EXPECT_THAT(store.status().message(), HasSubstr(corrupt));
  }
}

// Bytes changed inside a stored value pass SQLite's page checks; the stored
// checksum over every entry does not. A truncated (0-byte) file is not an
// empty store.
TEST_F(ConfigStoreTest, RefusesAStoreWhoseRowsNoLongerMatchTheirChecksum) {
  std::string dir = NewDir();
  const std::string file = dir + "/tampered.db";
  const std::string marker(64, 'M');
  {
    std::unique_ptr<ConfigStore> store = MustOpen(file);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Apply({Put("firewall.policy.1.action", "accept" + marker)}).ok());
    ASSERT_TRUE(store->Apply({Put("firewall.policy.2.action", "deny")}).ok());
  }
  {
    // Reopens fine, and a store written before checksums were stored gets
    // one on its first open.
    std::unique_ptr<ConfigStore> store = MustOpen(file);
    ASSERT_NE(store, nullptr);
  }
  // Overwrite 8 bytes inside the stored value, in place.
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(bytes.find(marker), std::string::npos);
  int fd = open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  // Wherever the value is (the entry and its history row).
  for (size_t at = bytes.find(marker); at != std::string::npos; at = bytes.find(marker, at + 1)) {
    ASSERT_EQ(pwrite(fd, "GARBAGE!", 8, static_cast<off_t>(at + 10)), 8);
  }
  close(fd);
  absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, Opts());
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("does not match its own checksum"));
  EXPECT_THAT(store.status().message(), HasSubstr("resyncs from the primary"));

  const std::string empty = dir + "/empty.db";
  std::ofstream(empty).close();
  store = ConfigStore::Open(empty, Opts());
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("is empty (0 bytes"));
  EXPECT_EQ(FileSize(empty), 0);
}

TEST_F(ConfigStoreTest, ApplyTimes) {
  std::unique_ptr<ConfigStore> store = MustOpen(file_);
  ASSERT_NE(store, nullptr);
  constexpr int kSingles = 50;
  absl::Time start = absl::Now();
  for (int i = 0; i < kSingles; ++i) {
    ASSERT_TRUE(store->Apply({Put(absl::StrCat("single.", i % 7), absl::StrCat(i))}).ok());
  }
  absl::Duration single = (absl::Now() - start) / kSingles;

  std::vector<ConfigChange> changes;
  for (int i = 0; i < 10000; ++i) {
    changes.push_back(Put(absl::StrCat("bulk.", i / 100, ".item", i % 100),
                          absl::StrCat("value-", i, "-", std::string(40, 'v'))));
  }
  start = absl::Now();
  absl::StatusOr<ConfigCommitResult> r = store->Apply(changes);
  absl::Duration bulk = absl::Now() - start;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied.size(), 10000u);

  ExclusionSet none;
  start = absl::Now();
  store->Checksum("", none);
  absl::Duration first_root = absl::Now() - start;
  start = absl::Now();
  for (int i = 0; i < 1000; ++i) store->Checksum("", none);
  absl::Duration cached_root = (absl::Now() - start) / 1000;

  start = absl::Now();
  store.reset();
  store = MustOpen(file_);
  absl::Duration reopen = absl::Now() - start;
  ASSERT_NE(store, nullptr);

  printf(
      "Apply(1 change): %s on average over %d; Apply(10000 puts): %s; Checksum(\"\") "
      "first %s, cached %s; reopen with 10007 entries: %s\n",
      absl::FormatDuration(single).c_str(), kSingles, absl::FormatDuration(bulk).c_str(),
      absl::FormatDuration(first_root).c_str(), absl::FormatDuration(cached_root).c_str(),
      absl::FormatDuration(reopen).c_str());
  EXPECT_LT(bulk, absl::Seconds(1));
}

// --- Crash safety -----------------------------------------------------------

// What a writer reports after each Apply that returned OK.
struct Ack {
  uint64_t revision = 0;
  uint64_t n = 0;
};

constexpr int kCrashKeys = 50;
constexpr int kBatchKeys = 200;

// The forked writer: "k.<n % 50>" = n for n = first, first + 1, ..., and
// every third write also sets "batch.0..199" = "<n>-bbb..." in the same
// commit. Never returns.
[[noreturn]] void RunWriter(const std::string& file, uint64_t first, int ack_fd) {
  absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, Opts());
  if (!store.ok()) _exit(2);
  for (uint64_t n = first;; ++n) {
    std::vector<ConfigChange> changes = {Put(absl::StrCat("k.", n % kCrashKeys), absl::StrCat(n))};
    if (n % 3 == 1) {
      // About 50 pages: a commit long enough for kills to land inside it.
      std::string value = absl::StrCat(n, "-", std::string(1000, 'b'));
      for (int j = 0; j < kBatchKeys; ++j) changes.push_back(Put(absl::StrCat("batch.", j), value));
    }
    absl::StatusOr<ConfigCommitResult> r = (*store)->Apply(changes);
    if (!r.ok() || r->revision == 0) _exit(3);
    Ack ack{r->revision, n};
    // 16 bytes: below PIPE_BUF, so written whole.
    if (write(ack_fd, &ack, sizeof(ack)) != static_cast<ssize_t>(sizeof(ack))) _exit(4);
  }
}

// Reads a writer's acks from a pipe.
class AckReader {
 public:
  explicit AckReader(int fd) : fd_(fd) {}
  ~AckReader() { close(fd_); }
  size_t count() const { return count_; }
  const Ack& last() const { return last_; }
  // Reads for `timeout`, or until EOF, or (with `until_first`) the first
  // ack. Returns false at EOF.
  bool ReadFor(absl::Duration timeout, bool until_first) {
    absl::Time deadline = absl::Now() + timeout;
    while (!(until_first && count_ > 0)) {
      int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (wait_ms < 0) return true;
      struct pollfd p = {fd_, POLLIN, 0};
      int ready = poll(&p, 1, wait_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return true;
      if (!ReadSome()) return false;
    }
    return true;
  }
  void Drain() {
    while (ReadSome()) {
    }
  }

 private:
  bool ReadSome() {
    char buffer[4096];
    ssize_t n = read(fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    pending_.append(buffer, static_cast<size_t>(n));
    while (pending_.size() >= sizeof(Ack)) {
      memcpy(&last_, pending_.data(), sizeof(Ack));
      pending_.erase(0, sizeof(Ack));
      ++count_;
    }
    return true;
  }
  const int fd_;
  std::string pending_;
  Ack last_;
  size_t count_ = 0;
};

uint64_t Number(const std::optional<std::string>& text) {
  uint64_t n = 0;
  if (!text.has_value() || !absl::SimpleAtoi(*text, &n)) {
    ADD_FAILURE() << "not a number: " << text.value_or("(absent)");
  }
  return n;
}

TEST(ConfigStoreCrashTest, KilledWriterLosesNoAcknowledgedWrite) {
  const uint32_t seed = std::random_device()();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  const std::string file = NewDir() + "/config.db";
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  uint64_t next_n = 0;
  uint64_t last_revision = 0;
  int iterations = 0;
  size_t total_acks = 0;
  // The same file throughout: each writer starts on what the last killed
  // one left behind.
  for (; iterations < 15 && absl::Now() < deadline; ++iterations) {
    SCOPED_TRACE(absl::StrCat("iteration ", iterations));
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    // Nothing in this test runs threads, so the child is a clean copy.
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunWriter(file, next_n, fds[1]);
    }
    close(fds[1]);
    AckReader acks(fds[0]);
    acks.ReadFor(absl::Seconds(10), /*until_first=*/true);
    if (acks.count() > 0) {
      std::uniform_int_distribution<int> delay_ms(1, 30);
      acks.ReadFor(absl::Milliseconds(delay_ms(rng)), /*until_first=*/false);
    }
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    acks.Drain();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer ended by itself with status " << status
        << " (exit 2: open failed, 3: Apply failed, 4: pipe write failed)";
    ASSERT_GT(acks.count(), 0u) << "no write acknowledged within 10 s";
    total_acks += acks.count();
    const Ack ack = acks.last();

    // Open runs the integrity check.
    std::unique_ptr<ConfigStore> store = MustOpen(file);
    ASSERT_NE(store, nullptr);
    EXPECT_GE(store->revision(), ack.revision);
    EXPECT_GE(store->revision(), last_revision);
    last_revision = store->revision();
    uint64_t stored = Number(ValueOf(*store, absl::StrCat("k.", ack.n % kCrashKeys)));
    // The acknowledged value or a later write of the same key.
    EXPECT_GE(stored, ack.n);
    EXPECT_EQ((stored - ack.n) % kCrashKeys, 0u);
    // Every key holds a value written for it, and no write from after the
    // last revision on disk.
    for (const StoredEntry& e : store->List("k")) {
      uint64_t n = Number(e.value);
      EXPECT_EQ(absl::StrCat("k.", n % kCrashKeys), e.path);
      EXPECT_LE(e.revision, store->revision());
    }
    // A batch is all or nothing.
    std::vector<StoredEntry> batch = store->List("batch");
    if (!batch.empty()) {
      ASSERT_EQ(batch.size(), static_cast<size_t>(kBatchKeys));
      for (const StoredEntry& e : batch) EXPECT_EQ(e.value, batch[0].value) << e.path;
    }
    // The next writer continues past anything this one may have written
    // unacknowledged (one Apply at most).
    next_n = ack.n + 2;
  }
  printf("crash test: %d writers killed, %zu acknowledged writes, revision %llu\n", iterations,
         total_acks, static_cast<unsigned long long>(last_revision));
  EXPECT_GE(iterations, 3);
}

// --- Full disk --------------------------------------------------------------

// A forked child's findings: it writes failures to `fd` and exits 1, or
// exits 0; exit 77 means "cannot run here" with the reason written.
[[noreturn]] void ChildFail(int fd, const std::string& message, int code = 1) {
  (void)!write(fd, message.data(), message.size());
  _exit(code);
}

struct ChildResult {
  int exit_code = -1;
  std::string output;
};

// Runs `body(fd)` in a forked child and collects what it writes to fd.
template <typename Body>
ChildResult RunChild(Body body) {
  ChildResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return result;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    body(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) result.output.append(buffer, n);
  close(fds[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return result;
}

constexpr int kEarlyKeys = 100;

std::vector<ConfigChange> EarlyChanges() {
  std::vector<ConfigChange> changes;
  for (int i = 0; i < kEarlyKeys; ++i)
    changes.push_back(Put(absl::StrCat("early.", i), absl::StrCat("v", i)));
  return changes;
}

// 40 values of 64 KiB: 2.5 MiB, more than either disk below holds.
std::vector<ConfigChange> HugeChanges() {
  std::vector<ConfigChange> changes;
  for (int i = 0; i < 40; ++i) {
    changes.push_back(
        Put(absl::StrCat("huge.", i), std::string(64 << 10, static_cast<char>('a' + i % 26))));
  }
  return changes;
}

// In a child: the huge write fails as a full disk and changes nothing, in
// memory or on disk; a small write then still succeeds.
void FillAndCheck(ConfigStore& store, int fd) {
  const uint64_t revision = store.revision();
  const std::string root = store.Checksum("", ExclusionSet()).checksum;
  absl::StatusOr<ConfigCommitResult> r = store.Apply(HugeChanges());
  if (r.ok()) ChildFail(fd, "the 2.5 MiB Apply succeeded on a full disk");
  if (!absl::IsResourceExhausted(r.status()) ||
      r.status().message().find("disk full, the write was not applied") ==
          absl::string_view::npos ||
      r.status().message().find(store.file()) == absl::string_view::npos) {
    ChildFail(fd,
              absl::StrCat("want RESOURCE_EXHAUSTED \"config store <file>: disk full, the write "
                           "was not applied: ...\", got ",
                           r.status().ToString()));
  }
  if (store.revision() != revision) ChildFail(fd, "the revision moved");
  if (store.Checksum("", ExclusionSet()).checksum != root) ChildFail(fd, "the root checksum moved");
  if (store.size() != static_cast<size_t>(kEarlyKeys)) ChildFail(fd, "the size changed");
  if (store.Get("huge.0").has_value()) ChildFail(fd, "huge.0 is in memory");
  std::optional<StoredEntry> early = store.Get("early.7");
  if (!early.has_value() || early->value != "v7") ChildFail(fd, "early.7 is gone");
  absl::StatusOr<ConfigCommitResult> small = store.Apply({Put("after", "1")});
  if (!small.ok())
    ChildFail(fd, absl::StrCat("a small write after the failure: ", small.status().ToString()));
  if (small->revision != revision + 1) ChildFail(fd, "the small write skipped a revision");
  std::string report = absl::StrCat("full disk reported as: ", r.status().ToString(), "\n");
  (void)!write(fd, report.data(), report.size());
}

void ExpectIntactAfterFullDisk(const ConfigStore& store) {
  EXPECT_EQ(store.revision(), 2u);
  EXPECT_EQ(store.size(), static_cast<size_t>(kEarlyKeys + 1));
  for (int i = 0; i < kEarlyKeys; ++i) {
    EXPECT_EQ(ValueOf(store, absl::StrCat("early.", i)), absl::StrCat("v", i));
  }
  EXPECT_TRUE(store.List("huge").empty());
  EXPECT_EQ(ValueOf(store, "after"), "1");
  for (const ConfigHistoryRecord& h : store.History(1000)) {
    EXPECT_THAT(h.path, ::testing::Not(HasSubstr("huge")));
  }
}

TEST(ConfigStoreFullDiskTest, FileSizeLimitFailsTheWriteAndKeepsTheStore) {
  const std::string file = NewDir() + "/config.db";
  {
    std::unique_ptr<ConfigStore> store = MustOpen(file);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Apply(EarlyChanges()).ok());
  }
  // The limit applies to the child alone, not to this process's logs.
  ChildResult child = RunChild([&](int fd) {
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, Opts());
    if (!store.ok()) ChildFail(fd, store.status().ToString());
    rlim_t limit = static_cast<rlim_t>(FileSize(file) + FileSize(file + "-wal") + (64 << 10));
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = limit;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
      ChildFail(fd, absl::StrCat("setrlimit: ", strerror(errno)));
    signal(SIGXFSZ, SIG_IGN);
    FillAndCheck(**store, fd);
  });
  ASSERT_EQ(child.exit_code, 0) << child.output;
  printf("%s", child.output.c_str());

  std::unique_ptr<ConfigStore> store = MustOpen(file);
  ASSERT_NE(store, nullptr);
  ExpectIntactAfterFullDisk(*store);
}

TEST(ConfigStoreFullDiskTest, FullTmpfsFailsTheWriteAndKeepsTheStore) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a 1 MiB tmpfs needs root";
  const std::string dir = NewDir();
  // All in a child with a mount namespace of its own: the tmpfs goes away
  // with it, whatever happens.
  ChildResult child = RunChild([&](int fd) {
    if (unshare(CLONE_NEWNS) != 0)
      ChildFail(fd, absl::StrCat("unshare(CLONE_NEWNS): ", strerror(errno)), 77);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      ChildFail(fd, absl::StrCat("making mounts private: ", strerror(errno)), 77);
    }
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) {
      ChildFail(fd, absl::StrCat("mount tmpfs: ", strerror(errno)), 77);
    }
    const std::string file = dir + "/config.db";
    {
      absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, Opts());
      if (!store.ok()) ChildFail(fd, store.status().ToString());
      absl::StatusOr<ConfigCommitResult> r = (*store)->Apply(EarlyChanges());
      if (!r.ok()) ChildFail(fd, r.status().ToString());
      FillAndCheck(**store, fd);
    }
    // Reopened on the still nearly full disk.
    absl::StatusOr<std::unique_ptr<ConfigStore>> store = ConfigStore::Open(file, Opts());
    if (!store.ok()) ChildFail(fd, absl::StrCat("reopening: ", store.status().ToString()));
    if ((*store)->revision() != 2 || (*store)->size() != static_cast<size_t>(kEarlyKeys + 1) ||
        !(*store)->List("huge").empty() || !(*store)->Get("early.99").has_value()) {
      ChildFail(fd, "the reopened store is not the one before the failed write");
    }
  });
  if (child.exit_code == 77) GTEST_SKIP() << child.output;
  EXPECT_EQ(child.exit_code, 0) << child.output;
  printf("%s", child.output.c_str());
}

}  // namespace
}  // namespace cloudha
