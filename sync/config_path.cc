#include "sync/config_path.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <iterator>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

// What a checked string is, for messages.
enum class Kind { kPath, kPrefix, kPattern };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kPath:
      return "config path";
    case Kind::kPrefix:
      return "config prefix";
    case Kind::kPattern:
      return "config pattern";
  }
  return "config path";
}

// The string quoted for a message: escaped, and cut short when long so that
// a huge bad input does not make a huge message.
std::string Quote(absl::string_view s) {
  constexpr size_t kShown = 80;
  if (s.size() <= kShown) return absl::StrCat("\"", absl::CHexEscape(s), "\"");
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kShown)), "...\"");
}

bool IsSegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

absl::Status Validate(absl::string_view s, Kind kind) {
  const char* name = KindName(kind);
  if (s.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " is empty"));
  if (s.size() > kMaxConfigPathBytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, " ", Quote(s), " is ", s.size(),
                                                   " bytes, more than ", kMaxConfigPathBytes));
  }
  if (s.front() == '.') {
    return absl::InvalidArgumentError(absl::StrCat(name, " ", Quote(s), " starts with '.'"));
  }
  if (s.back() == '.') {
    return absl::InvalidArgumentError(absl::StrCat(name, " ", Quote(s), " ends with '.'"));
  }
  // Apply hooks get the changed paths as arguments: one that starts with
  // '-' would read as an option ("--help").
  if (s.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " ", Quote(s), " starts with '-' (apply hooks would read it as an option)"));
  }
  size_t segment = 0;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('.', start);
    if (end == absl::string_view::npos) end = s.size();
    absl::string_view seg = s.substr(start, end - start);
    ++segment;
    if (segment > kMaxConfigSegments) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " ", Quote(s), " has more than ", kMaxConfigSegments, " segments"));
    }
    if (seg.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment ", segment, " of ", name, " ", Quote(s), " is empty"));
    }
    if (seg.size() > kMaxConfigSegmentBytes) {
      return absl::InvalidArgumentError(absl::StrCat("segment ", segment, " of ", name, " ",
                                                     Quote(s), " is ", seg.size(),
                                                     " bytes, more than ", kMaxConfigSegmentBytes));
    }
    const bool wildcard = seg == "*" || seg == "**";
    if (!(kind == Kind::kPattern && wildcard)) {
      for (size_t i = 0; i < seg.size(); ++i) {
        char c = seg[i];
        if (IsSegmentChar(c)) continue;
        if (c == '*' && kind == Kind::kPattern) {
          return absl::InvalidArgumentError(absl::StrCat(
              "segment ", segment, " of ", name, " ", Quote(s),
              " mixes '*' with other characters; \"*\" and \"**\" must be whole segments"));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "character '", absl::CHexEscape(absl::string_view(&c, 1)), "' at offset ", start + i,
            " of ", name, " ", Quote(s), " is not allowed (segments are made of A-Z a-z 0-9 _ -)"));
      }
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

// Segments of a valid path or pattern, without allocating. One slot more
// than a path may have, for the "*" a trailing "**" expands to.
struct Segments {
  std::array<absl::string_view, kMaxConfigSegments + 1> items;
  size_t size = 0;
};

// False when `s` has more segments than a valid path may have.
bool Split(absl::string_view s, Segments* out) {
  out->size = 0;
  size_t start = 0;
  while (true) {
    if (out->size == kMaxConfigSegments) return false;
    size_t end = s.find('.', start);
    if (end == absl::string_view::npos) {
      out->items[out->size++] = s.substr(start);
      return true;
    }
    out->items[out->size++] = s.substr(start, end - start);
    start = end + 1;
  }
}

const EVP_MD* Sha256() {
  // Fetched once: an explicit fetch spares OpenSSL 3 a provider lookup per
  // digest. Never freed, on purpose (used until exit).
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::string PatternsDigest(const std::vector<std::string>& patterns) {
  struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // SHA-256 of a message in memory fails only when OpenSSL itself is
  // broken (no default provider, out of memory); that is not recoverable.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), Sha256(), nullptr) != 1) abort();
  for (const std::string& p : patterns) {
    EVP_DigestUpdate(ctx.get(), p.data(), p.size());
    EVP_DigestUpdate(ctx.get(), "\n", 1);
  }
  if (EVP_DigestFinal_ex(ctx.get(), out, &len) != 1 || len != 32) abort();
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

absl::Status ValidateConfigPath(absl::string_view path) { return Validate(path, Kind::kPath); }

absl::Status ValidateConfigPrefix(absl::string_view prefix) {
  if (prefix.empty()) return absl::OkStatus();
  return Validate(prefix, Kind::kPrefix);
}

absl::Status ValidateConfigPattern(absl::string_view pattern) {
  return Validate(pattern, Kind::kPattern);
}

bool InConfigSubtree(absl::string_view path, absl::string_view prefix) {
  if (prefix.empty()) return true;
  if (path.size() < prefix.size() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '.';
}

bool ConfigGlobMatch(absl::string_view pattern, absl::string_view path) {
  Segments pat;
  Segments segs;
  if (!Split(pattern, &pat) || !Split(path, &segs)) return false;
  // A trailing "**" needs at least one segment: it is "*" followed by a
  // "**" that may match none.
  if (pat.items[pat.size - 1] == "**") {
    pat.items[pat.size - 1] = "*";
    pat.items[pat.size++] = "**";
  }
  // Greedy matching with backtracking to the last "**", as for '*' in
  // file-name globs (segments play the part of characters): linear for one
  // "**", quadratic at worst, and segments are few.
  size_t p = 0;
  size_t s = 0;
  size_t star_p = pat.size;  // none yet
  size_t star_s = 0;
  while (s < segs.size) {
    if (p < pat.size && pat.items[p] == "**") {
      star_p = p++;
      star_s = s;
    } else if (p < pat.size && (pat.items[p] == "*" || pat.items[p] == segs.items[s])) {
      ++p;
      ++s;
    } else if (star_p != pat.size) {
      // Let the last "**" swallow one more segment and retry after it.
      p = star_p + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pat.size && pat.items[p] == "**") ++p;
  return p == pat.size;
}

ExclusionSet::ExclusionSet() {
  static const std::string* const kEmptyDigest = new std::string(PatternsDigest({}));
  digest_ = *kEmptyDigest;
}

ExclusionSet::ExclusionSet(std::vector<std::string> sorted_unique)
    : patterns_(std::move(sorted_unique)), digest_(PatternsDigest(patterns_)) {}

absl::StatusOr<ExclusionSet> ExclusionSet::Create(const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    absl::Status s = ValidateConfigPattern(p);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("exclusion: ", s.message()));
  }
  std::vector<std::string> sorted = patterns;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  return ExclusionSet(std::move(sorted));
}

bool ExclusionSet::Excludes(absl::string_view path) const {
  for (const std::string& p : patterns_) {
    if (ConfigGlobMatch(p, path)) return true;
  }
  return false;
}

ExclusionSet ExclusionSet::Union(const ExclusionSet& other) const {
  if (other.patterns_.empty() || other.patterns_ == patterns_) return *this;
  if (patterns_.empty()) return other;
  std::vector<std::string> merged;
  merged.reserve(patterns_.size() + other.patterns_.size());
  std::set_union(patterns_.begin(), patterns_.end(), other.patterns_.begin(), other.patterns_.end(),
                 std::back_inserter(merged));
  return ExclusionSet(std::move(merged));
}

}  // namespace cloudha
