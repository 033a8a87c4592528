#include "test/fuzz/fuzz_support.h"

#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace cloudha {
namespace fuzz {
namespace {

bool WriteProcFile(const char* path, const std::string& text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// A network namespace of its own: as root directly, otherwise inside a user
// namespace that maps this user to itself. Returns what happened, for the
// one line printed at start.
std::string LeaveNetwork() {
  if (unshare(CLONE_NEWNET) == 0) return "a network namespace of its own (no network)";
  const int direct_error = errno;
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
    // Without maps the process would be "nobody" and lose its own files.
    WriteProcFile("/proc/self/setgroups", "deny");
    WriteProcFile("/proc/self/uid_map", absl::StrCat(uid, " ", uid, " 1"));
    WriteProcFile("/proc/self/gid_map", absl::StrCat(gid, " ", gid, " 1"));
    return "a user and network namespace of its own (no network)";
  }
  return absl::StrCat("the host's network (no namespace: ", strerror(direct_error),
                      "); the harnesses open no sockets");
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

void RemoveScratchDir() { nftw(ScratchDir().c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS); }

}  // namespace

uint64_t PickStream(const std::vector<uint64_t>& streams, uint64_t selector) {
  if (streams.empty()) return 1;
  switch (selector % 3) {
    case 0:
      return streams.back();
    case 1:
      return streams.size() > 1 ? streams[streams.size() - 2] : streams.back();
    default:
      return streams.back() + 1000;  // never opened
  }
}

const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/cloudha-fuzz-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) Fail(absl::StrCat("mkdtemp ", templ, ": ", strerror(errno)));
    auto* made = new std::string(templ);
    atexit(RemoveScratchDir);
    return made;
  }();
  return *dir;
}

void Fail(absl::string_view what) {
  // Both streams: runs that hide the agent's log close stderr (libFuzzer's
  // -close_fd_mask=2) and keep stdout.
  std::string line = absl::StrCat("fuzz invariant failed: ", what, "\n");
  fputs(line.c_str(), stdout);
  fflush(stdout);
  fputs(line.c_str(), stderr);
  abort();
}

bool Records::Next(uint8_t* kind, absl::string_view* payload) {
  if (offset_ >= size_) return false;
  *kind = static_cast<uint8_t>(data_[offset_]);
  size_t length = static_cast<size_t>(ReadUint(absl::string_view(data_ + offset_ + 1,
                                                                 std::min<size_t>(2, size_ - offset_ - 1)),
                                               0, 2));
  size_t start = std::min(size_, offset_ + 3);
  length = std::min(length, size_ - start);
  *payload = absl::string_view(data_ + start, length);
  offset_ = start + length;
  return true;
}

void AppendRecord(uint8_t kind, absl::string_view payload, std::string* out) {
  if (payload.size() > 0xffff) Fail(absl::StrCat("record of ", payload.size(), " bytes"));
  out->push_back(static_cast<char>(kind));
  out->push_back(static_cast<char>(payload.size() & 0xff));
  out->push_back(static_cast<char>(payload.size() >> 8));
  out->append(payload.data(), payload.size());
}

uint64_t ReadUint(absl::string_view payload, size_t offset, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes && i < 8; ++i) {
    if (offset + i >= payload.size()) break;
    value |= static_cast<uint64_t>(static_cast<uint8_t>(payload[offset + i])) << (8 * i);
  }
  return value;
}

}  // namespace fuzz
}  // namespace cloudha

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  std::string where = cloudha::fuzz::LeaveNetwork();
  printf("fuzz: runs in %s\n", where.c_str());
  fflush(stdout);
  // Refused input is logged as an error; the rest of the agent's log is
  // noise at a million inputs a minute.
  cloudha::ConfigureLogging(cloudha::LogFormat::kText, cloudha::LogLevel::kError);
  return 0;
}
