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
  while (true) {
    natsStatus s = js_PublishMsgAsync(source_.js(), &msg, &po);  // takes ownership on success
    if (s == NATS_OK) return;
    if (s != NATS_TIMEOUT || stop_) {  // timeout = too many unconfirmed publishes: wait and retry
      metrics::get().republish_failed.Increment();
      log::warn("republish", "could not publish a committed event", {{"subject", subject}, {"error", nats_error_text(s)}});
      natsMsg_Destroy(msg);
      return;
    }
  }
}

void commit_finalizer::run() {
  std::vector<audit_record> records;
  while (true) {
    if (!queue_.wait_dequeue_timed(records, std::chrono::milliseconds(100))) {
      if (stop_) return;
      continue;
    }
    for (auto& r : records) {
      if (cfg_.committed_enabled) republish(r);
      source_.count_down(r.origin, disposition::ack);
    }
    records.clear();
  }
}

}  // namespace trail
