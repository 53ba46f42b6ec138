#include "sinks/event_rows.h"

#include <openssl/sha.h>

#include <charconv>

#include "common/time.h"
#include "sinks/copy_encoding.h"

namespace trail {

identity_digest_t identity_digest(std::string_view source, std::string_view id) {
  thread_local std::string input;
  char len[24];
  const auto end = std::to_chars(len, len + sizeof len, source.size()).ptr;
  input.assign(len, static_cast<size_t>(end - len)).push_back(':');
  input.append(source).append(id);
  unsigned char full[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), full);
  identity_digest_t out;
  std::copy(full, full + out.size(), out.begin());
  return out;
}

std::string digest_hex(const identity_digest_t& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 0xf];
  }
  return out;
}

void render_rows(const audit_record& r, int64_t sequence, std::string& events_copy, std::string& ids_copy) {
  char seq[24];
  const auto end = std::to_chars(seq, seq + sizeof seq, sequence).ptr;
  events_copy.append(seq, static_cast<size_t>(end - seq)).push_back('\t');
  events_copy.append(r.copy_tail);
  copy_text::row_builder id_row(ids_copy);
  id_row.text(r.tenant_id);
  id_row.text(digest_hex(identity_digest(r.ce_source, r.ce_id)));
  id_row.text(r.ce_source);
  id_row.text(r.ce_id);
  id_row.integer(sequence);
  id_row.text(format_rfc3339_us(r.occurred_at_us));
  id_row.end_row();
}

}  // namespace trail
