#include "ingest/dead_letter.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <strings.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace trail {
namespace {

// Header values cannot carry CR or LF, and a reason quoting hostile input must
// not carry control bytes or broken UTF-8 into headers, logs or the table:
// anything outside printable ASCII is written as \xNN. Long messages are cut.
std::string header_safe(const std::string& s) {
  std::string out;
  out.reserve(std::min<size_t>(s.size(), 1024));
  for (unsigned char c : s) {
    if (out.size() >= 1024) break;
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// A publisher may set any header. Nats-* would steer the broker on the dead
// letter (deduplication, expectations, rollups) and Trail-Dlq-* would forge
// Trail's own verdict, so both travel renamed (Trail-Original-<name>).
bool is_reserved(const std::string& name) {
  return strncasecmp(name.c_str(), "Nats-", 5) == 0 || strncasecmp(name.c_str(), "Trail-Dlq-", 10) == 0;
}

// hex(HMAC-SHA256(key, "<stream>:<sequence>")), first 32 digits.
std::string keyed_position(const std::string& key, const std::string& stream, uint64_t seq) {
  const std::string text = stream + ":" + std::to_string(seq);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), mac, &len);
  std::string out;
  char buf[3];
  for (unsigned int i = 0; i < std::min(len, 16u); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", mac[i]);
    out += buf;
  }
  return out;
}

}  // namespace

dead_letter_publisher::dead_letter_publisher(dead_letter_options opt, jetstream_source& source, dead_letter_store& store,
                                             std::string installation_key)
    : opt_(std::move(opt)), source_(source), store_(store), key_(std::move(installation_key)) {}

dead_letter_publisher::~dead_letter_publisher() { stop(std::chrono::steady_clock::now()); }

void dead_letter_publisher::start() { thread_ = std::thread([this] { run(); }); }

void dead_letter_publisher::stop(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    deadline_ = deadline;
    stop_ = true;
  }
  queue_.enqueue(item{});  // wakes the thread now rather than at its next poll
  if (thread_.joinable()) thread_.join();
}

bool dead_letter_publisher::past_deadline() const {
  std::lock_guard<std::mutex> lock(stop_mu_);
  return stop_ && std::chrono::steady_clock::now() >= deadline_;
}

void dead_letter_publisher::reject_message(inbound_message* m, rejection why) {
  queue_.enqueue(item{m, std::move(why), true, {}});
}

void dead_letter_publisher::reject_event(message_ref event, rejection why) {
  inbound_message* m = event.get();
  queue_.enqueue(item{m, std::move(why), false, std::move(event)});
}

dead_letter_publisher::outcome dead_letter_publisher::publish(const item& it, int64_t stored_id) {
  inbound_message* m = it.msg;
  const std::string reason_msg = header_safe(it.why.message);
  std::vector<std::pair<std::string, std::string>> headers;
  if (stored_id == 0) {
    // The original headers, every value of each, in order; broker control
    // headers renamed so that the dead letter is stored whatever they say.
    for (const auto& [k, v] : m->headers) headers.emplace_back(is_reserved(k) ? "Trail-Original-" + k : k, v);
  } else {
    headers.emplace_back("Trail-Dlq-Stored", "audit.dead_letters/" + std::to_string(stored_id));
  }
  headers.emplace_back("Trail-Dlq-Reason", to_string(it.why.code));
  headers.emplace_back("Trail-Dlq-Message", reason_msg);
  headers.emplace_back("Trail-Dlq-Subject", m->subject);
  headers.emplace_back("Trail-Dlq-Stream-Sequence", std::to_string(m->stream_seq));
  headers.emplace_back("Trail-Dlq-Delivered", std::to_string(m->delivered));
  // Never the publisher's and not predictable without the installation's
  // key, so a dead letter cannot be deduplicated away by a message someone
  // else published first; stable across restarts and replicas, so a message
  // dead-lettered again after a crash is stored once.
  const std::string msg_id = "trail-dlq-" + opt_.stream + "-" + std::to_string(m->stream_seq) + "-" +
                             keyed_position(key_, opt_.stream, m->stream_seq);
  headers.emplace_back("Nats-Msg-Id", msg_id);
  const std::string_view body = stored_id == 0 ? m->data : std::string_view();
  const int64_t wire = static_cast<int64_t>(header_wire_size(headers) + body.size() + opt_.dlq_subject.size());
  if (wire > source_.max_payload()) return outcome::too_large;

  const stored_ack sent = publish_and_wait(source_.js(), opt_.dlq_subject, body, headers, nullptr, 5000);
  const natsStatus s = sent.status;
  const jsErrCode jerr = sent.jerr;
  const bool duplicate = sent.duplicate;
  if (s != NATS_OK) {
    log::limited(log::level::warn, "dlq", "could not store a dead letter; retrying",
                 {{"stream_seq", m->stream_seq}, {"reason", to_string(it.why.code)}, {"error", nats_error_text(s, jerr)}});
    // No responders (no stream takes the subject right now, e.g. during a
    // broker restart) and timeouts are transient; an API error is a refusal.
    const bool transient = s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT || s == NATS_CONNECTION_CLOSED ||
                           s == NATS_CONNECTION_DISCONNECTED || jerr == 0;
    return transient ? outcome::failed : outcome::refused;
  }
  // Only Trail knows the key: a duplicate is Trail's own earlier publish of
  // this very dead letter (a lost PubAck, or a crash before the term).
  if (duplicate) log::info("dlq", "dead letter already stored by an earlier attempt", {{"stream_seq", m->stream_seq}});
  return outcome::stored;
}

bool dead_letter_publisher::store_in_database(const item& it, int64_t& id) {
  inbound_message* m = it.msg;
  const std::string headers = header_wire_text(m->headers);
  const std::string reason_msg = header_safe(it.why.message);
  oversized_dead_letter d{opt_.stream, m->stream_seq, m->delivered, m->subject, to_string(it.why.code), reason_msg, headers, m->data};
  std::string err;
  if (auto stored = store_.store(d, &err)) {
    id = *stored;
    dead_letter_metrics::get().in_database.Increment();
    return true;
  }
  log::limited(log::level::warn, "dlq", "could not store an oversized dead letter in PostgreSQL; retrying",
               {{"stream_seq", m->stream_seq}, {"error", err}});
  return false;
}

void dead_letter_publisher::run() {
  item it;
  while (true) {
    if (!queue_.wait_dequeue_timed(it, std::chrono::milliseconds(100)) || it.msg == nullptr) {
      if (stop_ && queue_.size_approx() == 0) return;
      continue;
    }
    if (past_deadline()) return;  // what is left stays un-acked and is redelivered
    const bool first = !it.msg->dead_lettered.exchange(true);
    bool stored = !first;
    int64_t backoff_ms = 50;
    int refusals = 0;
    int64_t db_id = 0;  // > 0: the original bytes are in audit.dead_letters
    while (!stored) {
      const outcome o = publish(it, db_id);
      if (o == outcome::stored) {
        stored = true;
        break;
      }
      // Lossless either way: a dead letter the broker cannot take (too large
      // with Trail's headers, or refused again and again) keeps its bytes in
      // PostgreSQL, and a reference goes on the dead-letter subject.
      if (o == outcome::too_large || (o == outcome::refused && ++refusals >= 3)) {
        if (db_id == 0) {
          if (store_in_database(it, db_id)) {
            log::limited(log::level::warn, "dlq", "dead letter kept in PostgreSQL (it cannot travel through the broker)",
                         {{"stream_seq", it.msg->stream_seq}, {"id", db_id}, {"reason", to_string(it.why.code)}});
            refusals = 0;
            continue;  // publish the reference now
          }
        } else {
          stored = true;  // the bytes are safe; only the reference could not be published
          log::limited(log::level::warn, "dlq", "could not publish the reference to a dead letter kept in PostgreSQL",
                       {{"stream_seq", it.msg->stream_seq}, {"id", db_id}});
          break;
        }
      }
      if (past_deadline()) {
        // Not stored: leave the message un-acked; the broker redelivers it
        // to the next traild, which dead-letters it again.
        it.msg->dead_lettered = false;
        log::warn("dlq", "stopping with a dead letter unstored; it will be redelivered", {{"stream_seq", it.msg->stream_seq}});
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
    }
    if (first) {
      dead_letter_metrics::get().dead_lettered(to_string(it.why.code)).Increment();
      log::limited(log::level::info, "dlq", "event dead-lettered",
                   {{"stream_seq", it.msg->stream_seq}, {"reason", to_string(it.why.code)}, {"detail", header_safe(it.why.message)}});
    }
    if (it.whole_message) source_.finish(it.msg, disposition::term);
    else it.event.settle(event_outcome::dead_lettered);
  }
}

}  // namespace trail
