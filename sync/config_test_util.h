// Test helpers for the config replication tests: a store in a fresh
// directory under TEST_TMPDIR, and change constructors.
#ifndef CLOUDHA_SYNC_CONFIG_TEST_UTIL_H_
#define CLOUDHA_SYNC_CONFIG_TEST_UTIL_H_

#include <stdlib.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sync/config_path.h"
#include "sync/config_store.h"

namespace cloudha {

// A fresh store under TEST_TMPDIR; `clock` outlives it.
inline std::unique_ptr<ConfigStore> NewTestConfigStore(Clock* clock) {
  const char* base = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/config_XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << dir;
  ConfigStore::Options options;
  options.clock = clock;
  absl::StatusOr<std::unique_ptr<ConfigStore>> store =
      ConfigStore::Open(absl::StrCat(dir, "/config.db"), std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  return *std::move(store);
}

inline ConfigChange PutChange(std::string path, std::string value) {
  return ConfigChange{std::move(path), std::move(value)};
}
inline ConfigChange DeleteChange(std::string path) {
  return ConfigChange{std::move(path), std::nullopt};
}

// The exclusion set of `patterns` (which must be valid).
inline ExclusionSet Excluding(const std::vector<std::string>& patterns) {
  absl::StatusOr<ExclusionSet> set = ExclusionSet::Create(patterns);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : ExclusionSet();
}

// The value at `path`, if any.
inline std::optional<std::string> ValueAt(const ConfigStore& store, const std::string& path) {
  std::optional<StoredEntry> e = store.Get(path);
  if (!e.has_value()) return std::nullopt;
  return e->value;
}

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CONFIG_TEST_UTIL_H_
