#include "api/access_event.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/time.h"

namespace trail {

std::string render_access_event(const access_record& r) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&w](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  const std::string when = format_rfc3339_us(r.time_us);
  w.StartObject();
  w.Key("specversion");
  w.String("1.0");
  w.Key("id");
  str("access-" + r.request_id);
  w.Key("source");
  w.String("trail:api");
  w.Key("type");
  w.String("trail.audit.access.v1");
  w.Key("time");
  str(when);
  w.Key("datacontenttype");
  w.String("application/json");
  w.Key("data");
  w.StartObject();
  w.Key("tenant_id");
  str(r.tenant);
  w.Key("action");
  str(r.action);
  w.Key("category");
  w.String("CATEGORY_AUDIT_ACCESS");
  w.Key("severity");
  w.String(r.denied ? "SEVERITY_WARNING" : "SEVERITY_INFO");
  w.Key("actor");
  w.StartObject();
  w.Key("type");
  w.String(r.api_key ? "ACTOR_TYPE_API_KEY" : "ACTOR_TYPE_USER");
  w.Key("id");
  str(r.subject);
  w.EndObject();
  w.Key("primary_resource");
  w.StartObject();
  w.Key("type");
  w.String("audit_log");
  w.Key("id");
  str(r.tenant);
  w.EndObject();
  w.Key("outcome");
  w.StartObject();
  w.Key("status");
  w.String(r.denied ? "FAILURE" : "SUCCESS");
  if (r.denied) {
    w.Key("error_code");
    w.String("forbidden");
  }
  w.EndObject();
  w.Key("request_id");
  str(r.request_id);
  w.Key("source_service");
  w.String("traild");
  w.Key("metadata");
  w.StartObject();
  w.Key("path");
  str(r.path);
  w.Key("query");
  str(r.query);
  if (r.rows >= 0) {
    w.Key("rows");
    w.Int64(r.rows);
  }
  if (!r.via.empty()) {
    w.Key("via");
    str(r.via);
  }
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace trail
