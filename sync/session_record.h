// The in-memory form of a session, built for tables of millions.
//
// A SessionRecord is a plain fixed-size value (no heap): addresses are held
// in 16 bytes whatever the family (IPv4 uses the first 4, the rest zero), so
// records copy with memcpy and hash without indirection. The v1::Session
// proto is the form shown to users and data planes; ToProto/FromProto
// convert, and FromProto is where untrusted input is checked.
//
// Thread-compatible values; the functions are thread-safe.
#ifndef CLOUDHA_SYNC_SESSION_RECORD_H_
#define CLOUDHA_SYNC_SESSION_RECORD_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "cloudha/v1/session.pb.h"

namespace cloudha {

using IpAddress = std::array<uint8_t, 16>;

// What identifies a session: its original tuple and conntrack zone.
struct SessionKey {
  uint8_t family = 0;  // 2 (IPv4) or 10 (IPv6), as v1::AddressFamily
  uint8_t l4_protocol = 0;
  uint16_t zone = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  IpAddress src{};
  IpAddress dst{};

  bool operator==(const SessionKey& o) const {
    return std::memcmp(this, &o, sizeof(SessionKey)) == 0;
  }
  bool operator!=(const SessionKey& o) const { return !(*this == o); }

  template <typename H>
  friend H AbslHashValue(H h, const SessionKey& k) {
    return H::combine_contiguous(std::move(h), reinterpret_cast<const unsigned char*>(&k),
                                 sizeof(SessionKey));
  }
};
static_assert(sizeof(SessionKey) == 40, "SessionKey must have no padding (it is hashed as bytes)");

// Everything else a data plane needs to recreate the session.
struct SessionValue {
  IpAddress reply_src{};
  IpAddress reply_dst{};
  uint16_t reply_src_port = 0;
  uint16_t reply_dst_port = 0;
  uint8_t tcp_state = 0;  // v1::TcpState
  uint32_t timeout_s = 0;
  uint32_t flags = 0;
  uint32_t mark = 0;
  int64_t created_ms = 0;
  int64_t last_update_ms = 0;

  bool operator==(const SessionValue& o) const;
  bool operator!=(const SessionValue& o) const { return !(*this == o); }
};

struct SessionRecord {
  SessionKey key;
  SessionValue value;

  bool operator==(const SessionRecord& o) const { return key == o.key && value == o.value; }
};

// Address length in bytes for a family: 4, 16, or 0 when unknown.
inline int AddressLength(uint8_t family) {
  return family == 2 ? 4 : family == 10 ? 16 : 0;
}

// Whether the protocol has connection state FortiGate's session pickup
// replicates by default (TCP, SCTP); the rest are "connectionless".
inline bool IsConnectionOriented(uint8_t l4_protocol) {
  return l4_protocol == 6 || l4_protocol == 132;
}

// Proto -> record. INVALID_ARGUMENT names the field: unknown family, an
// address of the wrong length, a port or zone out of range.
absl::StatusOr<SessionRecord> RecordFromProto(const v1::Session& session);
absl::StatusOr<SessionKey> KeyFromProto(const v1::SessionKey& key);

void RecordToProto(const SessionRecord& record, v1::Session* out);
void KeyToProto(const SessionKey& key, v1::SessionKey* out);

// "tcp 198.18.0.1:40000 -> 198.18.0.2:443 [reply 198.18.0.2:443 -> ...]":
// for logs and errors.
std::string DescribeKey(const SessionKey& key);

// Protocol name for display: "tcp", "udp", "icmp", "icmpv6", "sctp", or the
// number.
std::string ProtocolName(uint8_t l4_protocol);

// The textual form of an address of `family`.
std::string FormatAddress(uint8_t family, const IpAddress& address);

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_RECORD_H_
