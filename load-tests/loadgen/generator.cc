#include "load-tests/loadgen/generator.h"

#include "common/time.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>

namespace trail::loadgen {

bool parse_mode(const std::string& text, mode& out) {
  static const std::pair<const char*, mode> names[] = {{"structured", mode::structured},
                                                       {"binary", mode::binary},
                                                       {"batch", mode::batch},
                                                       {"bare", mode::bare},
                                                       {"mixed", mode::mixed}};
  for (const auto& [name, m] : names)
    if (text == name) {
      out = m;
      return true;
    }
  return false;
}

bool parse_size_profile(const std::string& text, size_profile& out) {
  if (text == "small") out = size_profile::small;
  else if (text == "medium") out = size_profile::medium;
  else if (text == "large") out = size_profile::large;
  else return false;
  return true;
}

zipf_sampler::zipf_sampler(int n, double s) {
  cdf_.resize(static_cast<size_t>(std::max(n, 1)));
  double sum = 0;
  for (size_t k = 0; k < cdf_.size(); ++k) {
    sum += s == 0 ? 1.0 : 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf_[k] = sum;
  }
  for (auto& c : cdf_) c /= sum;
}

int zipf_sampler::operator()(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  return static_cast<int>(std::min<size_t>(static_cast<size_t>(it - cdf_.begin()), cdf_.size() - 1));
}

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

struct action_kind {
  const char* action;
  const char* category;
  const char* resource_type;
  const char* changed_field;  // the field a change event alters
};

constexpr action_kind kActions[] = {
    {"user.login", "AUTHENTICATION", "session", nullptr},
    {"user.logout", "AUTHENTICATION", "session", nullptr},
    {"user.password.changed", "AUTHENTICATION", "user", "password_changed_at"},
    {"user.role.updated", "AUTHORIZATION", "user", "role"},
    {"api_key.created", "AUTHORIZATION", "api_key", "scopes"},
    {"document.viewed", "DATA_ACCESS", "document", nullptr},
    {"document.updated", "DATA_CHANGE", "document", "title"},
    {"document.shared", "DATA_CHANGE", "document", "visibility"},
    {"invoice.paid", "BILLING", "invoice", "status"},
    {"project.settings.updated", "CONFIGURATION", "project", "retention_days"},
};
constexpr const char* kSeverities[] = {"info", "info", "info", "notice", "warning", "critical"};
constexpr const char* kActorTypes[] = {"user", "user", "user", "service", "api_key"};
constexpr const char* kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "trail-sdk-go/1.4.2", "curl/8.5.0"};
constexpr const char* kServices[] = {"identity", "documents", "billing", "admin-console", "public-api"};
constexpr const char* kWords[] = {"quarterly", "report",  "access",  "granted", "policy", "review",  "contract",
                                  "draft",     "customer", "export", "region",  "eu-west", "approved", "budget"};

template <size_t N>
const char* pick(const char* const (&arr)[N], std::mt19937_64& rng) {
  return arr[rng() % N];
}

void key_string(json_writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

std::string words(std::mt19937_64& rng, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (i) out.push_back(' ');
    out += pick(kWords, rng);
  }
  return out;
}

}  // namespace

event_generator::event_generator(generator_options opts)
    : opts_(std::move(opts)),
      request_prefix_(opts_.run_id + "-"),
      source_("//trail-loadgen/" + opts_.run_id),
      tenants_(opts_.tenants, opts_.zipf_s),
      rng_(opts_.seed) {}

std::string event_generator::tenant_name(int index) const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "lg-tenant-%05d", index);
  return buf;
}

void event_generator::payload(std::string& out, uint64_t ordinal, const std::string& tenant, bool tenant_inside,
                              int64_t now_us, bool occurred_inside) {
  const auto& kind = kActions[rng_() % std::size(kActions)];
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  if (tenant_inside) key_string(w, "tenant_id", tenant);
  if (occurred_inside) key_string(w, "occurred_at", format_rfc3339_us(now_us));
  key_string(w, "action", kind.action);
  key_string(w, "category", kind.category);
  key_string(w, "severity", pick(kSeverities, rng_));
  const bool medium = opts_.size != size_profile::small;
  const bool large = opts_.size == size_profile::large;
  w.Key("actor");
  w.StartObject();
  const char* actor_type = pick(kActorTypes, rng_);
  key_string(w, "type", actor_type);
  key_string(w, "id", std::string(actor_type) + "-" + std::to_string(rng_() % 5000));
  if (medium) {
    key_string(w, "display_name", "Person " + std::to_string(rng_() % 5000));
    key_string(w, "ip", "198.51.100." + std::to_string(rng_() % 254 + 1));
    key_string(w, "user_agent", pick(kAgents, rng_));
  }
  w.EndObject();
  w.Key("primary_resource");
  w.StartObject();
  key_string(w, "type", kind.resource_type);
  key_string(w, "id", std::string(kind.resource_type) + "-" + std::to_string(rng_() % 100000));
  w.EndObject();
  if (medium) {
    w.Key("related_resources");
    w.StartArray();
    w.StartObject();
    key_string(w, "type", "project");
    key_string(w, "id", "project-" + std::to_string(rng_() % 300));
    w.EndObject();
    w.EndArray();
  }
  const bool with_changes = std::uniform_real_distribution<double>(0, 1)(rng_) < opts_.changes_share;
  if (with_changes) {
    const char* field = kind.changed_field ? kind.changed_field : "status";
    w.Key("changes");
    w.StartObject();
    w.Key("old_value");
    w.StartObject();
    key_string(w, field, "v" + std::to_string(rng_() % 10));
    key_string(w, "updated_by", "user-" + std::to_string(rng_() % 5000));
    w.EndObject();
    w.Key("new_value");
    w.StartObject();
    key_string(w, field, "v" + std::to_string(10 + rng_() % 10));
    key_string(w, "updated_by", "user-" + std::to_string(rng_() % 5000));
    w.EndObject();
    w.EndObject();
  }
  w.Key("outcome");
  w.StartObject();
  const bool failed = rng_() % 20 == 0;
  key_string(w, "status", failed ? "FAILURE" : "SUCCESS");
  if (failed) key_string(w, "error_code", "permission_denied");
  w.EndObject();
  key_string(w, "description", words(rng_, large ? 40 : medium ? 10 : 4));
  key_string(w, "request_id", request_prefix_ + std::to_string(ordinal));
  key_string(w, "source_service", pick(kServices, rng_));
  if (medium) {
    char trace[33];
    std::snprintf(trace, sizeof trace, "%016llx%016llx", static_cast<unsigned long long>(rng_() | 1),
                  static_cast<unsigned long long>(rng_()));
    key_string(w, "trace_id", trace);
    w.Key("metadata");
    w.StartObject();
    key_string(w, "region", rng_() % 2 ? "eu-west-1" : "us-east-1");
    w.Key("attempt");
    w.Int(static_cast<int>(rng_() % 3) + 1);
    if (large)
      for (int i = 0; i < 30; ++i) key_string(w, ("attribute_" + std::to_string(i)).c_str(), words(rng_, 6));
    w.EndObject();
  }
  w.EndObject();
  out.append(sb.GetString(), sb.GetSize());
}

std::string event_generator::structured_event(uint64_t ordinal, const std::string& tenant, int64_t now_us) {
  std::string e = "{\"specversion\":\"1.0\",\"id\":\"" + request_prefix_ + std::to_string(ordinal) +
                  "\",\"source\":\"" + source_ + "\",\"type\":\"com.example.audit.v1\",\"time\":\"" +
                  format_rfc3339_us(now_us) + "\",\"datacontenttype\":\"application/json\",\"data\":";
  payload(e, ordinal, tenant, true, now_us, false);
  e.push_back('}');
  return e;
}

outgoing event_generator::invalid_message(int64_t now_us) {
  outgoing o;
  o.invalid = true;
  o.msg_id = opts_.run_id + "-x" + std::to_string(messages_);
  const std::string tag = request_prefix_ + "x" + std::to_string(messages_);
  switch (rng_() % 4) {
    case 0:  // not JSON
      o.body = "{\"specversion\":\"1.0\",\"id\":\"" + tag + "\", truncated";
      break;
    case 1:  // no actor
      o.body = "{\"specversion\":\"1.0\",\"id\":\"" + tag + "\",\"source\":\"" + source_ +
               "\",\"type\":\"com.example.audit.v1\",\"data\":{\"tenant_id\":\"" + tenant_name(0) +
               "\",\"action\":\"user.login\",\"primary_resource\":{\"type\":\"session\",\"id\":\"s\"}}}";
      break;
    case 2:  // unknown spec version
      o.body = "{\"specversion\":\"0.3\",\"id\":\"" + tag + "\",\"source\":\"" + source_ +
               "\",\"type\":\"com.example.audit.v1\",\"data\":{}}";
      break;
    default:  // binary mode, a time that is not RFC 3339
      payload(o.body, 0, tenant_name(0), true, now_us, false);
      o.headers = {{"ce-specversion", "1.0"}, {"ce-id", tag}, {"ce-source", source_},
                   {"ce-type", "com.example.audit.v1"}, {"ce-time", "yesterday"}};
      o.sent_as = mode::binary;
      break;
  }
  return o;
}

outgoing event_generator::next(int64_t now_us) {
  const uint64_t message = messages_;
  if (opts_.invalid_share > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < opts_.invalid_share) {
    outgoing o = invalid_message(now_us);
    ++messages_;
    return o;
  }
  ++messages_;
  mode m = opts_.send_mode;
  if (m == mode::mixed) {
    static constexpr mode kRotation[] = {mode::structured, mode::structured, mode::binary, mode::batch, mode::bare};
    m = kRotation[message % std::size(kRotation)];
  }
  outgoing o;
  o.sent_as = m;
  o.first_ordinal = next_ordinal_;
  const auto tenant = [&] { return tenant_name(tenants_(rng_)); };
  switch (m) {
    case mode::structured:
      o.body = structured_event(next_ordinal_, tenant(), now_us);
      o.events = 1;
      o.msg_id = request_prefix_ + std::to_string(next_ordinal_);
      break;
    case mode::binary: {
      const std::string t = tenant();
      payload(o.body, next_ordinal_, t, false, now_us, false);
      const std::string id = request_prefix_ + std::to_string(next_ordinal_);
      o.headers = {{"ce-specversion", "1.0"},           {"ce-id", id},
                   {"ce-source", source_},              {"ce-type", "com.example.audit.v1"},
                   {"ce-time", format_rfc3339_us(now_us)}, {"ce-tenantid", t},
                   {"content-type", "application/json"}};
      o.events = 1;
      o.msg_id = id;
      break;
    }
    case mode::bare:
      payload(o.body, next_ordinal_, tenant(), true, now_us, true);
      o.events = 1;
      o.msg_id = request_prefix_ + std::to_string(next_ordinal_);
      break;
    case mode::batch:
    case mode::mixed: {
      const int k = std::max(1, opts_.batch_size);
      o.body = "[";
      for (int i = 0; i < k; ++i) {
        if (i) o.body.push_back(',');
        o.body += structured_event(next_ordinal_ + static_cast<uint64_t>(i), tenant(), now_us);
      }
      o.body.push_back(']');
      o.headers = {{"content-type", "application/cloudevents-batch+json"}};
      o.events = static_cast<uint32_t>(k);
      o.msg_id = request_prefix_ + "b" + std::to_string(next_ordinal_);
      break;
    }
  }
  next_ordinal_ += o.events;
  return o;
}

}  // namespace trail::loadgen
