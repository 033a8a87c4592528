// The cluster epoch this node last promoted with, kept in STATE_DIR/epoch so
// that a restart never reuses one.
#ifndef CLOUDHA_AGENT_EPOCH_STORE_H_
#define CLOUDHA_AGENT_EPOCH_STORE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cloudha {

// Thread-compatible: one owner.
class EpochStore {
 public:
  explicit EpochStore(std::string state_dir);

  // The stored epoch; 0 when none was stored. DATA_LOSS when the file is
  // unreadable or corrupt (the agent refuses to start rather than reuse an
  // epoch).
  absl::StatusOr<uint64_t> Load() const;

  // Stores `epoch` durably (written, flushed and renamed into place) before
  // returning OK. A full disk or read-only folder is an error and leaves the
  // previous value intact.
  absl::Status Store(uint64_t epoch);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_EPOCH_STORE_H_
