// Reading and writing small files (certificates, keys, configuration) with
// errors that name the file and the fix.
//
// Thread-safe: the functions keep no state.
#ifndef CLOUDHA_BASE_SECURE_FILE_H_
#define CLOUDHA_BASE_SECURE_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

// Files larger than this are refused: nothing cloudha reads this way is
// legitimately bigger, and a wrong path (a device, a log) should not be
// slurped into memory.
inline constexpr size_t kMaxSmallFileBytes = 4 << 20;

// Returns the whole content of `path`. NOT_FOUND when it does not exist,
// PERMISSION_DENIED when it cannot be read, INVALID_ARGUMENT when it is not a
// regular file or is larger than kMaxSmallFileBytes.
absl::StatusOr<std::string> ReadSmallFile(absl::string_view path);

enum class Overwrite { kRefuse, kReplace };

// Writes `content` to `path` with permission bits `mode`, atomically: the
// data goes to a temporary file of a unique name in the same folder, is
// flushed to disk, and is renamed over `path`, and the folder is flushed
// (an error if it cannot be: the new name would not be durable), so a
// crash or a full disk never leaves a partial file. With Overwrite::kRefuse an existing `path` is an ALREADY_EXISTS error
// and is left untouched.
absl::Status WriteFileAtomically(absl::string_view path,
                                 absl::string_view content, int mode,
                                 Overwrite overwrite);

// Creates folder `path` with exactly the permission bits `mode` (its
// missing parents 0755 less the umask), like `mkdir -p`. OK when it exists
// already (its mode is left alone); FAILED_PRECONDITION when it or a parent
// is not a folder or cannot be created.
absl::Status MakeDirectories(const std::string& path, int mode);

}  // namespace cloudha

#endif  // CLOUDHA_BASE_SECURE_FILE_H_
