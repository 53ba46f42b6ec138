#include "ingest/finalizer.h"

#include <chrono>
#include <cstdio>

#include "common/log.h"
#include "common/time.h"

namespace trail {

commit_finalizer::commit_finalizer(const config& cfg, jetstream_source& source, dead_letter_publisher& dlq)
    : cfg_(cfg), source_(source), dlq_(dlq) {}

commit_finalizer::~commit_finalizer() { stop(); }

void commit_finalizer::start() { thread_ = std::thread([this] { run(); }); }

void commit_finalizer::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void commit_finalizer::committed(std::vector<audit_record>&& records) { queue_.enqueue(std::move(records)); }

void commit_finalizer::refused(audit_record&& record, std::string code, std::string message) {
  dlq_.reject_event(record.origin, rejection{std::move(code), std::move(message)});
}

void commit_finalizer::republish(const audit_record& r) {
  char seq[24];
  std::snprintf(seq, sizeof seq, "%019lld", static_cast<long long>(r.sequence));
  buffer_.clear();
  buffer_.append(r.committed_head);
  // The CloudEvents sequence extension is a lexicographically ordered string:
  // zero-padded decimal keeps string order equal to numeric order.
  buffer_.append("\"sequence\":\"").append(seq).append("\",\"recordedtime\":\"");
  buffer_.append(format_rfc3339_us(r.recorded_at_us)).append("\",\"data\":");
  buffer_.append(r.data_json).push_back('}');
  const std::string subject = cfg_.committed_prefix + "." + r.tenant_id;
  natsMsg* msg = nullptr;
  if (natsMsg_Create(&msg, subject.c_str(), nullptr, buffer_.data(), static_cast<int>(buffer_.size())) != NATS_OK) {
    metrics::get().republish_failed.Increment();
    return;
  }
  // No headers beyond Nats-Msg-Id: structured mode is the NATS binding's
  // default, and the sequence is in the event.
  if (cfg_.committed_stream.empty()) {
    if (natsConnection_PublishMsg(source_.connection(), msg) == NATS_OK) metrics::get().republish_ok.Increment();
    else metrics::get().republish_failed.Increment();
    natsMsg_Destroy(msg);
    return;
  }
  const std::string msg_id = r.tenant_id + ":" + std::to_string(r.sequence);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  natsStatus s;
  // NATS_TIMEOUT: too many unconfirmed publishes; they drain as the broker answers.
  while ((s = js_PublishMsgAsync(source_.js(), &msg, &po)) == NATS_TIMEOUT && !stop_) {
  }
  if (s != NATS_OK) {
    // Not sent (e.g. between a disconnect and the reconnect): try again later.
    // The Nats-Msg-Id header is already on the message.
    source_.republish_retries().enqueue(msg);
  }
}

void commit_finalizer::retry_republishes() {
  if (source_.take_resend_request()) {
    natsMsgList pending{nullptr, 0};
    if (js_PublishAsyncGetPendingList(&pending, source_.js()) == NATS_OK) {
      log::info("republish", "publishing again what was unconfirmed across a reconnect", {{"events", pending.Count}});
      for (int i = 0; i < pending.Count; ++i) {
        source_.republish_retries().enqueue(pending.Msgs[i]);
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
  std::vector<natsMsg*> batch(1024);
  size_t n;
  while ((n = source_.republish_retries().try_dequeue_bulk(batch.begin(), batch.size())) > 0) {
    for (size_t i = 0; i < n; ++i) {
      natsMsg* msg = batch[i];
      natsStatus s;
      while ((s = js_PublishMsgAsync(source_.js(), &msg, nullptr)) == NATS_TIMEOUT && !stop_) {
      }
      if (s != NATS_OK) source_.republish_retries().enqueue(msg);  // still not sendable: next round
    }
    if (n < batch.size()) break;
  }
}

void commit_finalizer::run() {
  std::vector<audit_record> records;
  while (true) {
    retry_republishes();
    if (!queue_.wait_dequeue_timed(records, std::chrono::milliseconds(100))) {
      if (stop_) return;
      continue;
    }
    auto& e2e = metrics::get().end_to_end_seconds;
    for (auto& r : records) {
      if (r.origin && r.origin->stream_time_us > 0 && !r.duplicate)
        e2e.Observe(static_cast<double>(r.recorded_at_us - r.origin->stream_time_us) / 1e6);
      if (cfg_.committed_enabled) republish(r);
      source_.count_down(r.origin, disposition::ack);
    }
    records.clear();
  }
}

}  // namespace trail
