#include "sinks/event_rows.h"

#include <charconv>

#include "common/time.h"
#include "sinks/copy_encoding.h"

namespace trail {

void render_rows(const audit_record& r, int64_t sequence, std::string& events_copy, std::string& ids_copy) {
  char seq[24];
  const auto end = std::to_chars(seq, seq + sizeof seq, sequence).ptr;
  events_copy.append(seq, static_cast<size_t>(end - seq)).push_back('\t');
  events_copy.append(r.copy_tail);
  copy_text::row_builder id_row(ids_copy);
  id_row.text(r.tenant_id);
  id_row.text(r.ce_source);
  id_row.text(r.ce_id);
  id_row.integer(sequence);
  id_row.text(format_rfc3339_us(r.occurred_at_us));
  id_row.end_row();
}

}  // namespace trail
