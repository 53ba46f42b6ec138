#include "ingest/dead_letter.h"

#include <strings.h>

#include <chrono>

#include "common/log.h"

namespace trail {
namespace {

// Header values cannot carry CR or LF; long messages are cut.
std::string header_safe(std::string s) {
  for (auto& c : s)
    if (c == '\r' || c == '\n') c = ' ';
  if (s.size() > 1024) s.resize(1024);
  return s;
}

}  // namespace

dead_letter_publisher::dead_letter_publisher(const config& cfg, jetstream_source& source) : cfg_(cfg), source_(source) {}

dead_letter_publisher::~dead_letter_publisher() { stop(); }

void dead_letter_publisher::start() { thread_ = std::thread([this] { run(); }); }

void dead_letter_publisher::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void dead_letter_publisher::reject_message(inbound_message* m, rejection why) {
  queue_.enqueue(item{m, std::move(why), true});
}

void dead_letter_publisher::reject_event(inbound_message* m, rejection why) {
  queue_.enqueue(item{m, std::move(why), false});
}

bool dead_letter_publisher::publish(const item& it) {
  inbound_message* m = it.msg;
  natsMsg* out = nullptr;
  if (natsMsg_Create(&out, cfg_.dlq_subject.c_str(), nullptr, m->data.data(), static_cast<int>(m->data.size())) != NATS_OK)
    return false;
  bool has_msg_id = false;
  for (const auto& [k, v] : m->headers) {
    // Nats-Expected-* would make the broker check the DLQ stream against the
    // original's expectations; keep them under another name.
    if (strncasecmp(k.c_str(), "Nats-Expected", 13) == 0) {
      natsMsgHeader_Add(out, ("Trail-Original-" + k).c_str(), v.c_str());
      continue;
    }
    if (strcasecmp(k.c_str(), "Nats-Msg-Id") == 0) has_msg_id = true;
    natsMsgHeader_Add(out, k.c_str(), v.c_str());
  }
  natsMsgHeader_Set(out, "Trail-Dlq-Reason", it.why.code.c_str());
  natsMsgHeader_Set(out, "Trail-Dlq-Message", header_safe(it.why.message).c_str());
  natsMsgHeader_Set(out, "Trail-Dlq-Subject", m->subject.c_str());
  natsMsgHeader_Set(out, "Trail-Dlq-Stream-Sequence", std::to_string(m->stream_seq).c_str());
  natsMsgHeader_Set(out, "Trail-Dlq-Delivered", std::to_string(m->delivered).c_str());
  jsPubOptions po;
  jsPubOptions_Init(&po);
  // A redelivered message dead-lettered again within the window is stored once.
  const std::string msg_id = "trail-dlq-" + cfg_.stream + "-" + std::to_string(m->stream_seq);
  if (!has_msg_id) po.MsgId = msg_id.c_str();
  po.MaxWait = 5000;
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&ack, source_.js(), out, &po, &jerr);
  natsMsg_Destroy(out);
  if (ack) jsPubAck_Destroy(ack);
  if (s != NATS_OK) {
    log::limited(log::level::warn, "dlq", "could not store a dead letter; retrying",
              {{"stream_seq", m->stream_seq}, {"reason", it.why.code}, {"error", nats_error_text(s, jerr)}});
    return false;
  }
  return true;
}

void dead_letter_publisher::run() {
  item it;
  while (true) {
    if (!queue_.wait_dequeue_timed(it, std::chrono::milliseconds(100))) {
      if (stop_) return;
      continue;
    }
    const bool first = !it.msg->dead_lettered.exchange(true);
    if (first) {
      int64_t backoff_ms = 50;
      while (!publish(it)) {
        if (stop_) {
          // Not stored: leave the message un-acked; the broker redelivers it
          // to the next traild, which dead-letters it again.
          log::warn("dlq", "stopping with a dead letter unstored; it will be redelivered", {{"stream_seq", it.msg->stream_seq}});
          goto next;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
      }
      metrics::get().dead_lettered(it.why.code).Increment();
      log::limited(log::level::info, "dlq", "event dead-lettered",
                {{"stream_seq", it.msg->stream_seq}, {"reason", it.why.code}, {"detail", it.why.message}});
    }
    if (it.whole_message) source_.finish(it.msg, disposition::term);
    else source_.count_down(it.msg, disposition::term);
  next:;
  }
}

}  // namespace trail
