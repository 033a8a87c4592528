#include "sync/session_record.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

absl::Status CopyAddress(const std::string& field, const std::string& bytes, uint8_t family,
                         IpAddress* out) {
  int length = AddressLength(family);
  if (static_cast<int>(bytes.size()) != length) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be ", length, " bytes for ",
                                                   family == 2 ? "IPv4" : "IPv6", ", got ",
                                                   bytes.size()));
  }
  out->fill(0);
  std::memcpy(out->data(), bytes.data(), length);
  return absl::OkStatus();
}

absl::Status CheckPort(const std::string& field, uint32_t port) {
  if (port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be 0..65535, got ", port));
  }
  return absl::OkStatus();
}

absl::Status FillKey(v1::AddressFamily family, uint32_t l4_protocol, const v1::Tuple& original,
                     uint32_t zone, SessionKey* key) {
  if (family != v1::IPV4 && family != v1::IPV6) {
    return absl::InvalidArgumentError(
        absl::StrCat("family must be IPV4 or IPV6, got ", static_cast<int>(family)));
  }
  if (l4_protocol > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("l4_protocol must be 0..255, got ", l4_protocol));
  }
  if (zone > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("zone must be 0..65535, got ", zone));
  }
  key->family = static_cast<uint8_t>(family);
  key->l4_protocol = static_cast<uint8_t>(l4_protocol);
  key->zone = static_cast<uint16_t>(zone);
  if (absl::Status s = CheckPort("original.src_port", original.src_port()); !s.ok()) return s;
  if (absl::Status s = CheckPort("original.dst_port", original.dst_port()); !s.ok()) return s;
  key->src_port = static_cast<uint16_t>(original.src_port());
  key->dst_port = static_cast<uint16_t>(original.dst_port());
  if (absl::Status s = CopyAddress("original.src_addr", original.src_addr(), key->family,
                                   &key->src);
      !s.ok()) {
    return s;
  }
  return CopyAddress("original.dst_addr", original.dst_addr(), key->family, &key->dst);
}

void FillTuple(uint8_t family, const IpAddress& src, const IpAddress& dst, uint16_t src_port,
               uint16_t dst_port, v1::Tuple* out) {
  int length = AddressLength(family);
  out->set_src_addr(reinterpret_cast<const char*>(src.data()), length);
  out->set_dst_addr(reinterpret_cast<const char*>(dst.data()), length);
  out->set_src_port(src_port);
  out->set_dst_port(dst_port);
}

}  // namespace

bool SessionValue::operator==(const SessionValue& o) const {
  return reply_src == o.reply_src && reply_dst == o.reply_dst &&
         reply_src_port == o.reply_src_port && reply_dst_port == o.reply_dst_port &&
         tcp_state == o.tcp_state && timeout_s == o.timeout_s && flags == o.flags &&
         mark == o.mark && created_ms == o.created_ms && last_update_ms == o.last_update_ms;
}

absl::StatusOr<SessionRecord> RecordFromProto(const v1::Session& session) {
  SessionRecord record;
  if (absl::Status s = FillKey(session.family(), session.l4_protocol(), session.original(),
                               session.zone(), &record.key);
      !s.ok()) {
    return s;
  }
  SessionValue& v = record.value;
  if (absl::Status s = CheckPort("reply.src_port", session.reply().src_port()); !s.ok()) return s;
  if (absl::Status s = CheckPort("reply.dst_port", session.reply().dst_port()); !s.ok()) return s;
  v.reply_src_port = static_cast<uint16_t>(session.reply().src_port());
  v.reply_dst_port = static_cast<uint16_t>(session.reply().dst_port());
  if (absl::Status s = CopyAddress("reply.src_addr", session.reply().src_addr(),
                                   record.key.family, &v.reply_src);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CopyAddress("reply.dst_addr", session.reply().dst_addr(),
                                   record.key.family, &v.reply_dst);
      !s.ok()) {
    return s;
  }
  if (!v1::TcpState_IsValid(session.tcp_state())) {
    return absl::InvalidArgumentError(
        absl::StrCat("tcp_state ", static_cast<int>(session.tcp_state()), " is unknown"));
  }
  v.tcp_state = static_cast<uint8_t>(session.tcp_state());
  v.timeout_s = session.timeout_s();
  v.flags = session.flags();
  v.mark = session.mark();
  v.created_ms = session.created_ms();
  v.last_update_ms = session.last_update_ms();
  return record;
}

absl::StatusOr<SessionKey> KeyFromProto(const v1::SessionKey& key) {
  SessionKey out;
  if (absl::Status s = FillKey(key.family(), key.l4_protocol(), key.original(), key.zone(), &out);
      !s.ok()) {
    return s;
  }
  return out;
}

void RecordToProto(const SessionRecord& record, v1::Session* out) {
  const SessionKey& k = record.key;
  const SessionValue& v = record.value;
  out->set_family(static_cast<v1::AddressFamily>(k.family));
  out->set_l4_protocol(k.l4_protocol);
  FillTuple(k.family, k.src, k.dst, k.src_port, k.dst_port, out->mutable_original());
  FillTuple(k.family, v.reply_src, v.reply_dst, v.reply_src_port, v.reply_dst_port,
            out->mutable_reply());
  out->set_tcp_state(static_cast<v1::TcpState>(v.tcp_state));
  out->set_timeout_s(v.timeout_s);
  out->set_flags(v.flags);
  out->set_mark(v.mark);
  out->set_zone(k.zone);
  out->set_created_ms(v.created_ms);
  out->set_last_update_ms(v.last_update_ms);
}

void KeyToProto(const SessionKey& key, v1::SessionKey* out) {
  out->set_family(static_cast<v1::AddressFamily>(key.family));
  out->set_l4_protocol(key.l4_protocol);
  FillTuple(key.family, key.src, key.dst, key.src_port, key.dst_port, out->mutable_original());
  out->set_zone(key.zone);
}

std::string ProtocolName(uint8_t l4_protocol) {
  switch (l4_protocol) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    default: return absl::StrCat(l4_protocol);
  }
}

std::string FormatAddress(uint8_t family, const IpAddress& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family == 10 ? AF_INET6 : AF_INET, address.data(), text, sizeof(text)) ==
      nullptr) {
    return "?";
  }
  return family == 10 ? absl::StrCat("[", text, "]") : std::string(text);
}

std::string DescribeKey(const SessionKey& key) {
  std::string out = absl::StrCat(ProtocolName(key.l4_protocol), " ",
                                 FormatAddress(key.family, key.src), ":", key.src_port, " -> ",
                                 FormatAddress(key.family, key.dst), ":", key.dst_port);
  if (key.zone != 0) absl::StrAppend(&out, " zone ", key.zone);
  return out;
}

}  // namespace cloudha
