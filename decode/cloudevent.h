#pragma once
// CloudEvents 1.0 envelope: structured (JSON format), batch and binary (NATS
// binding) modes. Only the envelope is checked here; the audit payload inside
// `data` is audit_payload's business.

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decode/rejection.h"

namespace trail {

struct ce_extension {
  enum class kind : uint8_t { string, boolean, integer };
  std::string name;
  kind type = kind::string;
  std::string text;  // the string value, or "true"/"false", or the decimal integer
};

struct ce_envelope {
  std::string specversion, id, source, type;
  std::optional<std::string> datacontenttype, dataschema, subject;
  std::optional<int64_t> time_us;
  const rapidjson::Value* data = nullptr;   // structured mode, JSON `data` (may be null)
  std::optional<std::string> data_base64;   // structured mode, `data_base64`
  std::vector<ce_extension> extensions;

  const ce_extension* extension(std::string_view name) const;
};

// Structured mode: `v` is one event object.
std::optional<rejection> parse_structured_envelope(const rapidjson::Value& v, ce_envelope& out);

// Batch mode: `v` must be an array; the batch is valid only if every element is
// a valid event (the CloudEvents JSON format: a batch is accepted or refused whole).
std::optional<rejection> parse_batch_envelopes(const rapidjson::Value& v,
                                               std::vector<ce_envelope>& out);

// Binary mode: attributes from `ce-*` headers (names case-insensitive, values
// percent-decoded); datacontenttype from Content-Type (or ce-datacontenttype).
std::optional<rejection> parse_binary_envelope(
    const std::vector<std::pair<std::string, std::string>>& headers, ce_envelope& out);

// True for JSON media types: application/json, text/json, anything "+json".
bool is_json_media_type(std::string_view content_type);
// The media type without parameters, lower-cased ("Application/JSON; x=y" -> "application/json").
std::string media_type_essence(std::string_view content_type);

bool is_valid_extension_name(std::string_view name);

// What PostgreSQL cannot store in otherwise valid UTF-8 text: "the NUL
// character …" or "an unpaired UTF-16 surrogate …" (for a rejection message),
// nullptr when the text has neither.
const char* unstorable_text_flaw(std::string_view s);

// Text that did not come through the JSON parser (binary mode's
// percent-decoded headers) gets the parser's checks: valid UTF-8, no NUL, no
// UTF-16 surrogates. `what` names it in the rejection.
std::optional<rejection> check_text(std::string_view s, const std::string& what);

// Longest accepted envelope attributes, in bytes. The identity (tenant,
// source, id) is a unique index key and must fit a btree entry.
inline constexpr size_t kMaxCeIdBytes = 256;
inline constexpr size_t kMaxCeSourceBytes = 1024;
inline constexpr size_t kMaxCeAttributeBytes = 1024;  // type, subject, dataschema, datacontenttype
std::optional<std::string> percent_decode(std::string_view in);

}  // namespace trail
