// What every cloudha fuzzer shares: leaving the network, quiet logs, a
// scratch folder, invariant checks that stop the run, and the record format
// of the fuzzers that feed a sequence of messages or calls.
//
// A sequence input is a run of records:
//
//   u8 kind, u16 length (little-endian), `length` bytes of payload
//
// A record whose payload runs past the end takes what is left, so every
// byte string is an input. A payload that is a protobuf message is decoded
// with ParseFromArray; one that does not parse is dropped, as gRPC drops a
// message it cannot decode.
//
// Thread-compatible: fuzzers run one input at a time.
#ifndef CLOUDHA_TEST_FUZZ_FUZZ_SUPPORT_H_
#define CLOUDHA_TEST_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cloudha {
namespace fuzz {

// Every fuzzer links this file, whose LLVMFuzzerInitialize (libFuzzer
// calls it once, before any input) moves the process into a network
// namespace of its own (only a loopback device, down) when the kernel
// allows it, so no fuzzed input can reach a network; and keeps the agent's
// log to errors. It prints what it did on stdout. A fuzzer defines only
// LLVMFuzzerTestOneInput.

// A folder of this process's own, on tmpfs when /dev/shm is there (the
// config store fsyncs every commit), removed at exit.
const std::string& ScratchDir();

// Prints "fuzz invariant failed: `what`" and aborts: libFuzzer keeps the
// input as a crash.
[[noreturn]] void Fail(absl::string_view what);

#define FUZZ_CHECK(condition, ...)                                                  \
  do {                                                                              \
    if (!(condition)) {                                                             \
      ::cloudha::fuzz::Fail(absl::StrCat(#condition, ": ", __VA_ARGS__));           \
    }                                                                               \
  } while (false)

// Reads an input as records (see the top of this file).
class Records {
 public:
  Records(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {}
  explicit Records(absl::string_view data) : data_(data.data()), size_(data.size()) {}

  // The next record; false at the end of the input.
  bool Next(uint8_t* kind, absl::string_view* payload);

 private:
  const char* data_;
  size_t size_;
  size_t offset_ = 0;
};

// Which stream a call goes to, of the ones a sequence opened (newest
// last): by `selector`, the newest, the one before it (a superseded
// stream), or one never opened; 1 before any opened.
uint64_t PickStream(const std::vector<uint64_t>& streams, uint64_t selector);

// Appends one record (for seed inputs). `payload` must be under 64 KiB.
void AppendRecord(uint8_t kind, absl::string_view payload, std::string* out);

// An unsigned little-endian number of `bytes` bytes at `offset` of
// `payload`; bytes past its end read as zero.
uint64_t ReadUint(absl::string_view payload, size_t offset, size_t bytes);

}  // namespace fuzz
}  // namespace cloudha

#endif  // CLOUDHA_TEST_FUZZ_FUZZ_SUPPORT_H_
