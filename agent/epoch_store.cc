#include "agent/epoch_store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/epoch_limit.h"
#include "base/secure_file.h"

namespace cloudha {

EpochStore::EpochStore(std::string state_dir) : path_(absl::StrCat(state_dir, "/epoch")) {}

absl::StatusOr<uint64_t> EpochStore::Load() const {
  absl::StatusOr<std::string> text = ReadSmallFile(path_);
  if (absl::IsNotFound(text.status())) return 0;
  if (!text.ok()) return absl::DataLossError(std::string(text.status().message()));
  absl::string_view body = absl::StripAsciiWhitespace(*text);
  uint64_t epoch = 0;
  if (!absl::ConsumePrefix(&body, "epoch ") || !absl::SimpleAtoi(body, &epoch) ||
      epoch > kMaxEpoch) {
    return absl::DataLossError(absl::StrCat(
        path_, " is corrupt (want \"epoch N\"); if the peers are up, the highest epoch they "
               "report (cloudha status) is safe to write back"));
  }
  return epoch;
}

absl::Status EpochStore::Store(uint64_t epoch) {
  absl::Status s =
      WriteFileAtomically(path_, absl::StrCat("epoch ", epoch, "\n"), 0600, Overwrite::kReplace);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("storing epoch ", epoch, ": ", s.message()));
  return absl::OkStatus();
}

}  // namespace cloudha
