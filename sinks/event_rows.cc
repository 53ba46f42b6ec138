#include "sinks/event_rows.h"


#include <charconv>

#include "common/sha256.h"
#include "decode/event_json.h"
#include "sinks/copy_encoding.h"

namespace trail {

identity_digest_t identity_digest(std::string_view source, std::string_view id) {
  thread_local std::string input;
  char len[24];
  const auto end = std::to_chars(len, len + sizeof len, source.size()).ptr;
  input.assign(len, static_cast<size_t>(end - len)).push_back(':');
  input.append(source).append(id);
  const sha256_digest full = sha256(input);
  identity_digest_t out;
  std::copy(full.begin(), full.begin() + static_cast<long>(out.size()), out.begin());
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

void render_rows(const audit_event& e, int64_t sequence, const chain_hash& prev, const chain_hash& hash,
                 std::string& events_copy, std::string& ids_copy, std::string_view extra_json) {
  using F = event_field;
  copy_text::row_builder row(events_copy);
  auto text = [&](F f) { row.text(e.get(f)); };
  auto optional = [&](F f) { row.optional_text(e.get(f), e.has(f)); };
  row.integer(sequence);
  text(F::tenant_id);
  text(F::occurred_at);
  text(F::ce_source);
  text(F::ce_id);
  text(F::ce_type);
  optional(F::ce_subject);
  row.text(to_string(e.mode));
  text(F::action);
  text(F::category);
  text(F::severity);
  text(F::actor_type);
  text(F::actor_id);
  optional(F::actor_display_name);
  optional(F::actor_ip);
  optional(F::actor_user_agent);
  optional(F::actor_session_id);
  text(F::resource_type);
  text(F::resource_id);
  optional(F::related_resources);
  optional(F::changes);
  optional(F::outcome_status);
  optional(F::outcome_error_code);
  optional(F::description);
  optional(F::metadata);
  optional(F::correlation_id);
  optional(F::request_id);
  text(F::source_service);
  optional(F::trace_id);
  if (has_extra(e) && !extra_json.empty()) {
    row.text(extra_json);
  } else if (has_extra(e)) {
    thread_local std::string extra;
    extra.clear();
    render_extra(e, extra);
    row.text(extra);
  } else {
    row.null();
  }
  row.bytea(prev.data(), prev.size());
  row.bytea(hash.data(), hash.size());
  row.end_row();

  copy_text::row_builder id_row(ids_copy);
  id_row.text(e.get(F::tenant_id));
  id_row.text(digest_hex(identity_digest(e.get(F::ce_source), e.get(F::ce_id))));
  id_row.text(e.get(F::ce_source));
  id_row.text(e.get(F::ce_id));
  id_row.integer(sequence);
  id_row.text(e.get(F::occurred_at));
  id_row.end_row();
}

}  // namespace trail
