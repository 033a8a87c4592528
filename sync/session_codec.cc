#include "sync/session_codec.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

constexpr size_t kUpsertFixed = 42;
constexpr size_t kDeleteFixed = 10;

// Little-endian stores and loads, byte by byte: the compiler turns them into
// single moves on little-endian machines.
template <typename T>
void Put(std::string* out, T value) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(value);
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) bytes[i] = static_cast<char>((u >> (8 * i)) & 0xff);
  out->append(bytes, sizeof(T));
}

template <typename T>
T Get(const unsigned char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (size_t i = 0; i < sizeof(T); ++i) u |= static_cast<U>(p[i]) << (8 * i);
  return static_cast<T>(u);
}

void PutAddress(std::string* out, const IpAddress& address, int length) {
  out->append(reinterpret_cast<const char*>(address.data()), length);
}

}  // namespace

size_t EncodedSize(const SessionChange& change) {
  size_t length = AddressLength(change.record.key.family);
  return change.op == SessionChange::Op::kUpsert ? kUpsertFixed + 4 * length
                                                 : kDeleteFixed + 2 * length;
}

void AppendUpsert(const SessionRecord& record, std::string* out) {
  const SessionKey& k = record.key;
  const SessionValue& v = record.value;
  int length = AddressLength(k.family);
  Put<uint8_t>(out, 1);
  Put<uint8_t>(out, k.family);
  Put<uint8_t>(out, k.l4_protocol);
  Put<uint8_t>(out, v.tcp_state);
  Put<uint16_t>(out, k.zone);
  Put<uint16_t>(out, k.src_port);
  Put<uint16_t>(out, k.dst_port);
  Put<uint16_t>(out, v.reply_src_port);
  Put<uint16_t>(out, v.reply_dst_port);
  Put<uint32_t>(out, v.timeout_s);
  Put<uint32_t>(out, v.flags);
  Put<uint32_t>(out, v.mark);
  Put<int64_t>(out, v.created_ms);
  Put<int64_t>(out, v.last_update_ms);
  PutAddress(out, k.src, length);
  PutAddress(out, k.dst, length);
  PutAddress(out, v.reply_src, length);
  PutAddress(out, v.reply_dst, length);
}

void AppendDelete(const SessionKey& k, std::string* out) {
  int length = AddressLength(k.family);
  Put<uint8_t>(out, 2);
  Put<uint8_t>(out, k.family);
  Put<uint8_t>(out, k.l4_protocol);
  Put<uint8_t>(out, 0);
  Put<uint16_t>(out, k.zone);
  Put<uint16_t>(out, k.src_port);
  Put<uint16_t>(out, k.dst_port);
  PutAddress(out, k.src, length);
  PutAddress(out, k.dst, length);
}

void AppendChange(const SessionChange& change, std::string* out) {
  if (change.op == SessionChange::Op::kUpsert) {
    AppendUpsert(change.record, out);
  } else {
    AppendDelete(change.record.key, out);
  }
}

absl::Status DecodeChanges(absl::string_view data, uint32_t expected_count,
                           std::vector<SessionChange>* out) {
  const size_t first = out->size();
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t size = data.size();
  // The count is the sender's word, checked only once the records are read:
  // reserve no more than `data` can hold (a delete of IPv4 is the smallest).
  constexpr size_t kSmallestRecord = kDeleteFixed + 2 * 4;
  out->reserve(first + std::min<size_t>(expected_count, size / kSmallestRecord));
  size_t offset = 0;
  uint32_t index = 0;
  auto fail = [&](const std::string& why) {
    out->resize(first);
    return absl::InvalidArgumentError(
        absl::StrCat("malformed session change ", index, " at byte ", offset, ": ", why));
  };
  while (offset < size) {
    if (index >= expected_count) {
      return fail(absl::StrCat("more records than the ", expected_count, " announced"));
    }
    if (size - offset < 2) return fail("truncated header");
    const unsigned char* r = p + offset;
    uint8_t op = r[0];
    uint8_t family = r[1];
    int length = AddressLength(family);
    if (length == 0) return fail(absl::StrCat("unknown address family ", family));
    SessionChange change;
    SessionKey& k = change.record.key;
    k.family = family;
    if (op == 1) {
      size_t need = kUpsertFixed + 4 * length;
      if (size - offset < need) return fail(absl::StrCat("truncated upsert (", need, " bytes)"));
      SessionValue& v = change.record.value;
      change.op = SessionChange::Op::kUpsert;
      k.l4_protocol = r[2];
      v.tcp_state = r[3];
      if (!v1::TcpState_IsValid(v.tcp_state)) {
        return fail(absl::StrCat("unknown TCP state ", v.tcp_state));
      }
      k.zone = Get<uint16_t>(r + 4);
      k.src_port = Get<uint16_t>(r + 6);
      k.dst_port = Get<uint16_t>(r + 8);
      v.reply_src_port = Get<uint16_t>(r + 10);
      v.reply_dst_port = Get<uint16_t>(r + 12);
      v.timeout_s = Get<uint32_t>(r + 14);
      v.flags = Get<uint32_t>(r + 18);
      v.mark = Get<uint32_t>(r + 22);
      v.created_ms = Get<int64_t>(r + 26);
      v.last_update_ms = Get<int64_t>(r + 34);
      const unsigned char* a = r + kUpsertFixed;
      std::memcpy(k.src.data(), a, length);
      std::memcpy(k.dst.data(), a + length, length);
      std::memcpy(v.reply_src.data(), a + 2 * length, length);
      std::memcpy(v.reply_dst.data(), a + 3 * length, length);
      offset += need;
    } else if (op == 2) {
      size_t need = kDeleteFixed + 2 * length;
      if (size - offset < need) return fail(absl::StrCat("truncated delete (", need, " bytes)"));
      change.op = SessionChange::Op::kDelete;
      k.l4_protocol = r[2];
      k.zone = Get<uint16_t>(r + 4);
      k.src_port = Get<uint16_t>(r + 6);
      k.dst_port = Get<uint16_t>(r + 8);
      const unsigned char* a = r + kDeleteFixed;
      std::memcpy(k.src.data(), a, length);
      std::memcpy(k.dst.data(), a + length, length);
      offset += need;
    } else {
      return fail(absl::StrCat("unknown operation ", op));
    }
    out->push_back(change);
    ++index;
  }
  if (index != expected_count) {
    return fail(absl::StrCat("found ", index, " records, the batch announced ", expected_count));
  }
  return absl::OkStatus();
}

}  // namespace cloudha
