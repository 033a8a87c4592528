// Fuzzes the epoch file parser (agent/epoch_store.h): the input is the
// content of STATE_DIR/epoch. Load must answer an epoch or DATA_LOSS, never
// crash; an epoch it accepts must be what "epoch N" says, and storing it
// and loading again must give it back.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/epoch_store.h"
#include "test/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = cloudha::fuzz::ScratchDir();
  const std::string file = absl::StrCat(dir, "/epoch");
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, "cannot write ", file);
  FUZZ_CHECK(write(fd, data, size) == static_cast<ssize_t>(size), "short write to ", file);
  close(fd);

  cloudha::EpochStore store(dir);
  absl::StatusOr<uint64_t> epoch = store.Load();
  if (!epoch.ok()) {
    FUZZ_CHECK(epoch.status().code() == absl::StatusCode::kDataLoss, epoch.status().ToString());
    return 0;
  }
  // What the file says, read the obvious way.
  absl::string_view text = absl::StripAsciiWhitespace(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  uint64_t said = 0;
  FUZZ_CHECK(absl::ConsumePrefix(&text, "epoch ") && absl::SimpleAtoi(text, &said) && said == *epoch,
             "Load() = ", *epoch, " for a file that does not say so");
  absl::Status stored = store.Store(*epoch);
  FUZZ_CHECK(stored.ok(), stored.ToString());
  absl::StatusOr<uint64_t> again = store.Load();
  FUZZ_CHECK(again.ok() && *again == *epoch, "stored ", *epoch, ", loaded ",
             again.ok() ? absl::StrCat(*again) : again.status().ToString());
  return 0;
}
