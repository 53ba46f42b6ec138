#include "ingest/finalizer.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/log.h"
#include "common/time.h"
#include "decode/event_json.h"

namespace trail {

commit_finalizer::commit_finalizer(finalizer_options opt, jetstream_source& source, dead_letter_publisher& dlq,
                                   outbox_keeper* outbox)
    : opt_(std::move(opt)), source_(source), dlq_(dlq), outbox_(outbox) {}

commit_finalizer::~commit_finalizer() { stop(); }

void commit_finalizer::start() { thread_ = std::thread([this] { run(); }); }

void commit_finalizer::stop() {
  stop_ = true;
  queue_.enqueue({});  // wakes the thread now rather than at its next poll
  if (thread_.joinable()) thread_.join();
}

void commit_finalizer::committed(std::vector<audit_record>&& records) { queue_.enqueue(std::move(records)); }

void commit_finalizer::refused(audit_record&& record, dlq_reason code, std::string message) {
  dlq_.reject_event(std::move(record.origin), rejection{code, std::move(message)});
}

void commit_finalizer::republish(const audit_record& r) {
  const padded_sequence seq(r.sequence);
  // A transaction's records share their recorded time: format it once.
  if (r.recorded_at_us != recorded_us_ || recorded_text_.empty()) {
    recorded_us_ = r.recorded_at_us;
    recorded_text_ = format_rfc3339_us(r.recorded_at_us);
  }
  buffer_.clear();
  render_committed_event(r.event, seq, recorded_text_, buffer_);
  subject_.assign(opt_.committed_prefix).push_back('.');
  subject_.append(r.tenant_id());
  const std::string& subject = subject_;
  natsMsg* msg = nullptr;
  if (natsMsg_Create(&msg, subject.c_str(), nullptr, buffer_.data(), static_cast<int>(buffer_.size())) != NATS_OK) {
    republish_metrics::get().failed.Increment();
    if (outbox_ && r.outbox_id > 0) outbox_->give_up(r.outbox_id);  // the row stays for the reconciler
    return;
  }
  // No headers beyond Nats-Msg-Id: structured mode is the NATS binding's
  // default, and the sequence is in the event.
  if (!opt_.committed_stream) {
    if (natsConnection_PublishMsg(source_.connection(), msg) == NATS_OK) republish_metrics::get().confirmed.Increment();
    else republish_metrics::get().failed.Increment();
    natsMsg_Destroy(msg);
    return;
  }
  msg_id_.assign(r.tenant_id()).push_back(':');
  char digits[20];
  msg_id_.append(digits, static_cast<size_t>(std::to_chars(digits, digits + sizeof digits, r.sequence).ptr - digits));
  const std::string& msg_id = msg_id_;
  // The validator refuses events whose committed copy cannot fit; this is the
  // last guard, so that one message can never get the connection closed.
  const int64_t wire = static_cast<int64_t>(buffer_.size() + subject.size() + msg_id.size() + 64);
  if (wire > source_.max_payload()) {
    natsMsg_Destroy(msg);
    republish_metrics::get().failed.Increment();
    log::limited(log::level::error, "republish", "a committed event is larger than the broker's max_payload; not republished",
                 {{"tenant_sequence", msg_id}, {"bytes", wire}, {"max_payload", source_.max_payload()}});
    return;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  po.MaxWait = opt_.publish_ack_timeout_ms;  // a PubAck lost on the way is retried, not awaited forever
  // Before nats.c has it: its confirmation can come back at once.
  if (outbox_ && r.outbox_id > 0) outbox_->published(msg, r.outbox_id);
  send(msg, &po);
}

bool commit_finalizer::send(natsMsg* msg, jsPubOptions* po) {
  source_.mark_async_used();
  // Never waits for room: when the broker's window of unconfirmed publishes
  // is full (nats.publish_max_pending; nats.c stalls briefly, then says
  // NATS_TIMEOUT) or the connection is down, the event waits in the bounded
  // retry queue and its source is acked all the same.
  const natsStatus s = js_PublishMsgAsync(source_.js(), &msg, po);
  if (s == NATS_OK) {
    source_.unconfirmed().fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // The Nats-Msg-Id header is already on the message.
  republish_metrics::get().retries.Increment();
  source_.queue_retry(msg);
  return false;
}

void commit_finalizer::retry_republishes() {
  if (source_.take_resend_request() && source_.async_used()) {
    natsMsgList pending{nullptr, 0};
    if (js_PublishAsyncGetPendingList(&pending, source_.js()) == NATS_OK) {
      log::info("republish", "publishing again what was unconfirmed across a reconnect", {{"events", pending.Count}});
      for (int i = 0; i < pending.Count; ++i) {
        source_.unconfirmed().fetch_sub(1, std::memory_order_relaxed);
        source_.queue_retry(pending.Msgs[i]);
        pending.Msgs[i] = nullptr;
      }
      natsMsgList_Destroy(&pending);
    }
  }
  // Paced: a broker that refuses now (no responders during a restart) is
  // given time before the next attempt.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_retry_ < std::chrono::milliseconds(250)) return;
  last_retry_ = now;
  republish_metrics::get().retry_backlog.Set(static_cast<double>(source_.retry_backlog()));
  republish_metrics::get().unconfirmed.Set(static_cast<double>(source_.unconfirmed().load(std::memory_order_relaxed)));
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = opt_.publish_ack_timeout_ms;
  // At most one pass over what is queued now; a publish that cannot go out
  // (window full, disconnected) goes back to the end and ends the pass.
  for (int64_t n = source_.retry_backlog(); n > 0 && !stop_; --n) {
    natsMsg* msg = nullptr;
    if (!source_.take_retry(msg)) break;
    if (!send(msg, &po)) break;
  }
}

void commit_finalizer::run() {
  std::vector<audit_record> records;
  while (true) {
    retry_republishes();
    // Backpressure: while too many committed events wait for a republish
    // retry, take no more (acks wait, the in-flight gate fills, fetching pauses).
    if (source_.retry_backlog() >= opt_.republish_retry_max) {
      if (stop_) return;
      log::limited(log::level::warn, "republish", "republish retries at their bound; holding acks until the broker confirms",
                   {{"backlog", source_.retry_backlog()}});
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (!queue_.wait_dequeue_timed(records, std::chrono::milliseconds(100)) || records.empty()) {
      if (stop_ && queue_.size_approx() == 0) return;
      continue;
    }
    auto& e2e = republish_metrics::get().end_to_end_seconds;
    for (auto& r : records) {
      if (r.origin && r.origin->stream_time_us > 0 && !r.duplicate)
        e2e.Observe(static_cast<double>(r.recorded_at_us - r.origin->stream_time_us) / 1e6);
      if (opt_.committed_enabled && r.republish) republish(r);
      r.origin.settle(event_outcome::committed);
    }
    // A transaction's events share one outbox row: every one is handed over now.
    if (outbox_) {
      int64_t sealed = 0;
      for (const auto& r : records)
        if (r.outbox_id > 0 && r.outbox_id != sealed) outbox_->seal(sealed = r.outbox_id);
    }
    records.clear();
  }
}

}  // namespace trail
