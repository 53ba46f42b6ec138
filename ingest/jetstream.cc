#include "ingest/jetstream.h"

#include <chrono>
#include <cstring>

#include "sinks/writer_metrics.h"
#include "common/log.h"
#include "common/time.h"

namespace trail {
namespace {

constexpr int64_t kNsPerSecond = 1000000000LL;
constexpr int kDispatchChunk = 64;  // messages per hand-off to one validator

void on_disconnected(natsConnection*, void* closure) {
  auto* h = static_cast<health*>(closure);
  h->nats_connected = false;
  if (h->nats_closing) return;
  log::warn("nats", "disconnected from NATS; reconnecting (un-acked messages stay with the broker)");
}
}  // namespace

void jetstream_source::on_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<jetstream_source*>(closure);
  self->health_.nats_connected = true;
  // Publishes in flight across the outage may never be answered: the
  // finalizer takes them back and publishes them again.
  self->resend_pending_ = true;
  source_metrics::get().nats_reconnects.Increment();
  log::info("nats", "reconnected to NATS");
}

namespace {

// Retries are paced by the finalizer (every 250 ms): about a minute for a
// transient failure (no responders during a broker restart, a timeout).
constexpr int kRepublishAttempts = 240;
// A refusal by the broker (a JetStream API error: permissions, a stream that
// no longer takes the subject, a limit) is not transient: a few attempts only.
constexpr int kRepublishRefusedAttempts = 3;

std::string committed_identity(natsMsg* msg) {
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) return id;
  return natsMsg_GetSubject(msg);
}

}  // namespace

void jetstream_source::on_publish_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* self = static_cast<jetstream_source*>(closure);
  self->republish_unconfirmed_.fetch_sub(1, std::memory_order_relaxed);
  if (pa) {
    republish_metrics::get().confirmed.Increment();
    if (self->tracker_) self->tracker_->confirmed(msg);
    natsMsg_Destroy(msg);
    return;
  }
  // Not confirmed: publish again later from the finalizer thread (never from
  // here: this thread is the one that frees pending publishes).
  const char* attempt = nullptr;
  int n = 1;
  if (natsMsgHeader_Get(msg, "Trail-Attempt", &attempt) == NATS_OK && attempt) n = std::atoi(attempt);
  const bool refused = pae && pae->ErrCode != 0;
  if (n < (refused ? kRepublishRefusedAttempts : kRepublishAttempts)) {
    natsMsgHeader_Set(msg, "Trail-Attempt", std::to_string(n + 1).c_str());
    republish_metrics::get().retries.Increment();
    self->queue_retry(msg);
    return;
  }
  republish_metrics::get().failed.Increment();
  if (self->tracker_) self->tracker_->abandoned(msg);
  log::limited(log::level::error, "republish", "giving up on the republish of a committed event for now (it is stored; the outbox keeper republishes it later)",
               {{"subject", natsMsg_GetSubject(msg)}, {"tenant_sequence", committed_identity(msg)}, {"attempts", n},
                {"error", pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(pae ? pae->Err : NATS_ERR)}});
  natsMsg_Destroy(msg);
}

void jetstream_source::queue_retry(natsMsg* msg) {
  republish_retry_count_.fetch_add(1, std::memory_order_relaxed);
  republish_retries_.enqueue(msg);
}

bool jetstream_source::take_retry(natsMsg*& msg) {
  if (!republish_retries_.try_dequeue(msg)) return false;
  republish_retry_count_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

size_t jetstream_source::settle_republishes(std::chrono::steady_clock::time_point deadline) {
  if (!js_) return 0;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::max<int64_t>(1, left);
  js_PublishAsyncComplete(js_, &po);
  // What is still unconfirmed (pending at the broker, or waiting for a retry)
  // cannot be made durable any more: name each one, so that it can be found
  // in the table and republished by hand or caught up by the subscriber.
  std::vector<natsMsg*> lost;
  natsMsgList pending{nullptr, 0};
  if (async_used() && js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) {
    for (int i = 0; i < pending.Count; ++i) {
      lost.push_back(pending.Msgs[i]);
      pending.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&pending);
  }
  for (natsMsg* m = nullptr; take_retry(m);) lost.push_back(m);
  for (natsMsg* m : lost) {
    republish_metrics::get().failed.Increment();
    if (tracker_) tracker_->abandoned(m);
    log::warn("republish", "stopping before the broker confirmed a committed event's republish; it is stored and stays in audit.outbox, to be republished by the next outbox pass",
              {{"subject", natsMsg_GetSubject(m)}, {"tenant_sequence", committed_identity(m)}});
    natsMsg_Destroy(m);
  }
  return lost.size();
}

void read_headers(natsMsg* m, header_list& out) {
  const char** keys = nullptr;
  int nkeys = 0;
  if (natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK) return;
  for (int k = 0; k < nkeys; ++k) {
    const char** values = nullptr;
    int nvalues = 0;
    if (natsMsgHeader_Values(m, keys[k], &values, &nvalues) != NATS_OK) continue;
    for (int v = 0; v < nvalues; ++v) out.emplace_back(keys[k], values[v] ? values[v] : "");
    free(values);
  }
  free(keys);
}

const char* nats_error_text(natsStatus s, jsErrCode jerr) {
  static thread_local std::string text;
  text = natsStatus_GetText(s);
  if (jerr) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  const char* last = nats_GetLastError(nullptr);
  if (last && *last) text += ": " + std::string(last);
  return text.c_str();
}

natsStatus set_servers(natsOptions* o, const std::string& urls) {
  std::vector<std::string> list;
  for (size_t at = 0; at <= urls.size();) {
    const size_t comma = std::min(urls.find(',', at), urls.size());
    std::string one = urls.substr(at, comma - at);
    one.erase(0, one.find_first_not_of(" \t"));
    one.erase(one.find_last_not_of(" \t") + 1);
    if (!one.empty()) list.push_back(std::move(one));
    at = comma + 1;
  }
  if (list.size() <= 1) return natsOptions_SetURL(o, list.empty() ? urls.c_str() : list[0].c_str());
  std::vector<const char*> ptrs;
  for (const auto& u : list) ptrs.push_back(u.c_str());
  return natsOptions_SetServers(o, ptrs.data(), static_cast<int>(ptrs.size()));
}

stored_ack publish_and_wait(jsCtx* js, const std::string& subject, std::string_view body, const header_list& headers,
                            const char* msg_id, int64_t max_wait_ms) {
  stored_ack out;
  natsMsg* msg = nullptr;
  out.status = natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  if (out.status != NATS_OK) return out;
  for (const auto& [k, v] : headers) natsMsgHeader_Add(msg, k.c_str(), v.c_str());
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id;
  po.MaxWait = max_wait_ms;
  jsPubAck* ack = nullptr;
  out.status = js_PublishMsg(&ack, js, msg, &po, &out.jerr);
  natsMsg_Destroy(msg);
  if (ack) {
    out.duplicate = ack->Duplicate;
    jsPubAck_Destroy(ack);
  }
  return out;
}

jetstream_source::jetstream_source(source_options opt, health& h)
    : opt_(std::move(opt)), health_(h), gate_(opt_.inflight_max_events, opt_.inflight_max_bytes) {
  source_metrics::get().inflight_events_limit.Set(static_cast<double>(opt_.inflight_max_events));
  source_metrics::get().inflight_bytes_limit.Set(static_cast<double>(opt_.inflight_max_bytes));
}

jetstream_source::~jetstream_source() {
  stop_fetching();
  close();
}

bool jetstream_source::connect(const std::atomic<bool>& abort) {
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  set_servers(opts, opt_.url);
  natsOptions_SetName(opts, "traild");
  natsOptions_SetMaxReconnect(opts, -1);  // forever: a broker outage is waited out
  natsOptions_SetReconnectWait(opts, 250);
  natsOptions_SetReconnectJitter(opts, 100, 1000);
  natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);  // acks and publishes queued during a reconnect
  natsOptions_SetPingInterval(opts, 5000);
  natsOptions_SetMaxPingsOut(opts, 3);
  natsOptions_SetDisconnectedCB(opts, on_disconnected, &health_);
  natsOptions_SetReconnectedCB(opts, &jetstream_source::on_reconnected, this);

  int64_t backoff_ms = 100;
  while (!abort) {
    natsStatus s = natsConnection_Connect(&nc_, opts);
    if (s == NATS_OK) break;
    log::warn("nats", "cannot connect to NATS; retrying",
              {{"url", opt_.url_in_logs}, {"error", nats_error_text(s)}, {"retry_ms", backoff_ms}});
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000);
  }
  natsOptions_Destroy(opts);
  if (!nc_) return false;
  health_.nats_connected = true;

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  jo.PublishAsync.MaxPending = opt_.publish_max_pending;
  jo.PublishAsync.StallWait = 20;  // ms; then the republish waits in the retry queue (finalizer.cc)
  jo.PublishAsync.AckHandler = &jetstream_source::on_publish_ack;
  jo.PublishAsync.AckHandlerClosure = this;
  if (natsStatus s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK) {
    log::error("nats", "cannot create a JetStream context", {{"error", nats_error_text(s)}});
    return false;
  }
  // Streams and consumer. A JetStream that does not answer yet (a cluster
  // electing its leaders, a node restarting) is waited out; a stream or
  // consumer Trail cannot use stops the start.
  for (int64_t wait_ms = 200; !abort; wait_ms = std::min<int64_t>(wait_ms * 2, 5000)) {
    setup_transient_ = false;
    if (set_up()) return true;
    if (!setup_transient_) return false;
    log::warn("nats", "JetStream cannot set up Trail's streams yet; retrying", {{"retry_ms", wait_ms}});
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  }
  return false;
}

bool jetstream_source::set_up() {
  const std::string stream_subject = "audit.events";
  // audit.events is required of an existing AUDIT stream; audit.events.> only
  // wished for (a stream without it is used, with a warning).
  if (!ensure_stream(opt_.stream, {stream_subject, stream_subject + ".>"}, 1, opt_.stream_max_age_s,
                     opt_.stream_max_bytes, opt_.duplicate_window_s) ||
      !ensure_stream(opt_.dlq_stream, {opt_.dlq_subject}, 1, opt_.dlq_max_age_s, -1, opt_.duplicate_window_s))
    return false;
  if (opt_.committed_enabled && !opt_.committed_stream.empty() &&
      !ensure_stream(opt_.committed_stream, {opt_.committed_prefix + ".>"}, 1, opt_.committed_max_age_s,
                     opt_.committed_max_bytes, opt_.duplicate_window_s))
    return false;
  if (!opt_.checkpoint_stream.empty() &&
      !ensure_stream(opt_.checkpoint_stream, {opt_.checkpoint_prefix + ".>"}, 1, opt_.checkpoint_max_age_s, -1,
                     opt_.duplicate_window_s))
    return false;
  return ensure_consumer();
}

namespace {

// Does a stream subject (possibly with wildcards) cover `subject`?
bool subject_covers(std::string_view pattern, std::string_view subject) {
  while (true) {
    const auto pdot = pattern.find('.'), sdot = subject.find('.');
    const auto ptok = pattern.substr(0, pdot), stok = subject.substr(0, sdot);
    if (ptok == ">") return true;
    if (ptok != "*" && ptok != stok) return false;
    if (pdot == std::string_view::npos || sdot == std::string_view::npos) return pdot == sdot;
    pattern.remove_prefix(pdot + 1);
    subject.remove_prefix(sdot + 1);
  }
}

}  // namespace

bool jetstream_source::ensure_stream(const std::string& name, const std::vector<std::string>& subjects,
                                     size_t required, int64_t max_age_s, int64_t max_bytes,
                                     int64_t duplicate_window_s) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    // Missing: create it with Trail's settings.
    std::vector<const char*> subj;
    for (const auto& x : subjects) subj.push_back(x.c_str());
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name.c_str();
    sc.Subjects = subj.data();
    sc.SubjectsLen = static_cast<int>(subj.size());
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.MaxAge = max_age_s * kNsPerSecond;
    sc.MaxBytes = max_bytes;
    sc.Duplicates = duplicate_window_s * kNsPerSecond;
    sc.Replicas = opt_.stream_replicas;
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, js_, &sc, nullptr, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {  // another replica created it meanwhile
      jerr = static_cast<jsErrCode>(0);
      s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &jerr);
    } else if (s == NATS_OK) {
      log::info("nats", "stream created", {{"stream", name}, {"subjects", subjects.front()}, {"replicas", opt_.stream_replicas}});
      jsStreamInfo_Destroy(si);
      return true;
    }
  }
  if (s != NATS_OK) {  // the API did not answer or refused: JetStream is not ready
    log::warn("nats", "cannot create or read a stream", {{"stream", name}, {"error", nats_error_text(s, jerr)}});
    setup_transient_ = true;
    return false;
  }
  // It exists: Trail never changes an operator's stream. Verify that it can
  // do its job, adopt its limits and replicas, refuse to start otherwise.
  const jsStreamConfig* c = si->Config;
  std::string problem;
  for (size_t k = 0; k < subjects.size(); ++k) {
    const auto& want = subjects[k];
    bool covered = false;
    for (int i = 0; i < c->SubjectsLen && !covered; ++i) covered = subject_covers(c->Subjects[i], want);
    if (covered) continue;
    if (k < required) problem = "its subjects do not include " + want;
    else log::warn("nats", "the existing stream does not capture every subject Trail consumes; messages there are not ingested",
                   {{"stream", name}, {"missing", want}});
  }
  if (problem.empty() && c->Sealed) problem = "it is sealed (no new messages)";
  if (problem.empty() && c->NoAck && name != opt_.stream)
    problem = "it does not acknowledge publishes (no_ack), and Trail waits for each acknowledgement";
  if (problem.empty() && c->Duplicates < duplicate_window_s * kNsPerSecond && name != opt_.stream)
    problem = "its duplicate window (" + std::to_string(c->Duplicates / kNsPerSecond) + " s) is shorter than nats.duplicate_window_s (" +
              std::to_string(duplicate_window_s) + " s), so a republish after a crash could be stored twice";
  if (!problem.empty()) {
    log::error("nats", "the existing stream is not usable by Trail; fix it or point Trail at another stream (nothing was changed)",
               {{"stream", name}, {"problem", problem}});
    jsStreamInfo_Destroy(si);
    return false;
  }
  if (c->Replicas != opt_.stream_replicas || c->MaxAge != max_age_s * kNsPerSecond || c->MaxBytes != max_bytes)
    log::info("nats", "stream exists; keeping its own settings",
              {{"stream", name}, {"replicas", c->Replicas}, {"max_age_s", c->MaxAge / kNsPerSecond}, {"max_bytes", c->MaxBytes}});
  else
    log::info("nats", "stream ready", {{"stream", name}, {"subjects", subjects.front()}});
  jsStreamInfo_Destroy(si);
  return true;
}

bool jetstream_source::ensure_consumer() {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, js_, opt_.stream.c_str(), opt_.consumer.c_str(), nullptr, &jerr);
  jsConsumerConfig cc;
  if (s == NATS_OK) {
    // It exists: start from its own configuration, so that whatever an
    // operator set (replicas, back-off, metadata) is kept; refuse a consumer
    // that cannot give Trail's guarantees.
    cc = *ci->Config;
    std::string problem;
    if (cc.AckPolicy != js_AckExplicit) problem = "its ack policy is not explicit";
    else if (cc.DeliverSubject && *cc.DeliverSubject) problem = "it is a push consumer; Trail needs a pull consumer";
    else if (cc.FilterSubject && *cc.FilterSubject && !subject_covers(cc.FilterSubject, "audit.events"))
      problem = std::string("its filter subject ") + cc.FilterSubject + " does not cover audit.events";
    if (!problem.empty()) {
      log::error("nats", "the existing durable consumer is not usable by Trail (nothing was changed)",
                 {{"consumer", opt_.consumer}, {"problem", problem}});
      jsConsumerInfo_Destroy(ci);
      return false;
    }
  } else {
    jsConsumerConfig_Init(&cc);
    cc.Durable = opt_.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
  }
  // Trail's own knobs. MaxDeliver is unlimited on purpose: Trail counts
  // deliveries itself and dead-letters a message after nats.max_deliver tries,
  // so the broker never drops one silently (not even one nak'ed at shutdown).
  const bool differs = cc.AckWait != opt_.ack_wait_s * kNsPerSecond || cc.MaxDeliver != -1 ||
                       cc.MaxAckPending != opt_.max_ack_pending || cc.MaxRequestBatch != opt_.fetch_batch;
  cc.AckWait = opt_.ack_wait_s * kNsPerSecond;
  cc.MaxDeliver = -1;
  cc.MaxAckPending = opt_.max_ack_pending;
  cc.MaxRequestBatch = static_cast<int64_t>(opt_.fetch_batch);
  jsConsumerInfo* updated = nullptr;
  jerr = static_cast<jsErrCode>(0);
  if (s != NATS_OK) s = js_AddConsumer(&updated, js_, opt_.stream.c_str(), &cc, nullptr, &jerr);
  else if (differs) s = js_UpdateConsumer(&updated, js_, opt_.stream.c_str(), &cc, nullptr, &jerr);
  if (ci) jsConsumerInfo_Destroy(ci);
  if (updated) jsConsumerInfo_Destroy(updated);
  if (s != NATS_OK) {
    log::warn("nats", "cannot create or update the durable consumer",
              {{"consumer", opt_.consumer}, {"error", nats_error_text(s, jerr)}});
    setup_transient_ = true;
    return false;
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = opt_.stream.c_str();
  so.Consumer = opt_.consumer.c_str();
  s = js_PullSubscribe(&sub_, js_, "audit.events", opt_.consumer.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) {
    log::error("nats", "cannot bind to the durable consumer", {{"consumer", opt_.consumer}, {"error", nats_error_text(s, jerr)}});
    return false;
  }
  log::info("nats", "consumer ready", {{"stream", opt_.stream}, {"consumer", opt_.consumer}});
  return true;
}

void jetstream_source::start_fetching(deliver_fn deliver) {
  deliver_ = std::move(deliver);
  stop_ = false;
  fetch_thread_ = std::thread([this] { fetch_loop(); });
  keepalive_thread_ = std::thread([this] { keepalive_loop(); });
}

void jetstream_source::stop_fetching() {
  stop_ = true;
  if (fetch_thread_.joinable()) fetch_thread_.join();
  health_.consumer_running = false;
}

void jetstream_source::track(inbound_message* m) {
  std::lock_guard<std::mutex> lock(inflight_mu_);
  m->next = inflight_head_;
  if (inflight_head_) inflight_head_->prev = m;
  inflight_head_ = m;
}

void jetstream_source::untrack(inbound_message* m) {
  std::lock_guard<std::mutex> lock(inflight_mu_);
  if (m->prev) m->prev->next = m->next;
  else inflight_head_ = m->next;
  if (m->next) m->next->prev = m->prev;
  m->prev = m->next = nullptr;
}

// While the database is down, messages wait in memory; InProgress resets
// their ack timer so JetStream does not redeliver them in a storm.
void jetstream_source::keepalive_loop() {
  const int64_t every_us = std::max<int64_t>(1, opt_.ack_wait_s / 3) * 1000000;
  std::unique_lock<std::mutex> wait_lock(keepalive_mu_);
  int64_t last_poll_us = 0;
  while (!keepalive_cv_.wait_for(wait_lock, std::chrono::milliseconds(std::min<int64_t>(every_us / 1000, 1000)),
                                 [&] { return closing_.load(); })) {
    wait_lock.unlock();  // close() must not wait for a broker request
    const int64_t now = now_unix_us();
    size_t touched = 0;
    {
      std::lock_guard<std::mutex> lock(inflight_mu_);
      for (inbound_message* m = inflight_head_; m; m = m->next) {
        if (now - m->progress_at_us < every_us) continue;
        if (natsMsg_InProgress(static_cast<natsMsg*>(m->handle), nullptr) == NATS_OK) {
          m->progress_at_us = now;
          ++touched;
        }
      }
    }
    if (touched) log::info("ingest", "kept waiting messages alive (InProgress)", {{"messages", touched}});
    // Now and then: the consumer's backlog as the broker sees it, and idle connections.
    if (now - last_poll_us >= 1000000) {
      last_poll_us = now;
      consumer_state cs;
      if (consumer_info(cs)) {
        source_metrics::get().consumer_pending.Set(static_cast<double>(cs.num_pending));
        source_metrics::get().consumer_ack_pending.Set(static_cast<double>(cs.num_ack_pending));
      }
      auto& w = writer_metrics::get();
      w.pg_connections_idle.Set(std::max(0.0, health_.writers_connected - w.pg_connections_busy.Value()));
      if (auto* top = metrics::tenants()) top->publish();
    }
    wait_lock.lock();
  }
}

size_t jetstream_source::nak_all_in_flight(int64_t delay_ms) {
  size_t n = 0;
  std::lock_guard<std::mutex> lock(inflight_mu_);
  for (inbound_message* m = inflight_head_; m; m = m->next, ++n) {
    natsMsg_NakWithDelay(static_cast<natsMsg*>(m->handle), delay_ms, nullptr);
    m->progress_at_us = INT64_MAX / 2;  // handed back: no more InProgress for it
  }
  return n;
}

void jetstream_source::fetch_loop() {
  auto& m = source_metrics::get();
  health_.consumer_running = true;
  int64_t backoff_ms = 50;
  std::vector<inbound_message*> chunk;
  bool paused = false;
  // Idle: one long pull request for a single message, so that the first event
  // after a quiet spell is fetched at once. Busy: no-wait requests for a whole
  // batch, answered at once with what the stream holds; when that was less
  // than a batch, wait fetch_wait_ms before asking again so that a trickle is
  // fetched in a few requests, not one per message. (A waiting request for N
  // messages would return only when N arrived or it expired.)
  bool idle = true;
  auto paused_since = std::chrono::steady_clock::now();
  while (!stop_) {
    const int64_t room = gate_.wait_for_room(std::chrono::milliseconds(200));
    m.inflight_events.Set(static_cast<double>(gate_.events()));
    m.inflight_bytes.Set(static_cast<double>(gate_.bytes()));
    const auto now_steady = std::chrono::steady_clock::now();
    if (room == 0) {  // full: JetStream keeps the backlog
      if (!paused) {
        paused = true;
        paused_since = now_steady;
        m.backpressure_pauses.Increment();
      }
      continue;
    }
    if (paused) {
      paused = false;
      m.backpressure_seconds.Increment(std::chrono::duration<double>(now_steady - paused_since).count());
    }

    // No pull requests while disconnected: nats.c would buffer them and send
    // them all at once after the reconnect.
    if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    const bool no_wait = !idle;
    req.Batch = idle ? 1 : static_cast<int>(std::min<int64_t>(room, opt_.fetch_batch));
    req.NoWait = no_wait;
    // Messages already waiting in the subscription (late answers to earlier
    // pull requests, e.g. after a reconnect or a timeout) are taken one per
    // call: nats.c 3.4.1's fetch overruns its array when more than half a
    // batch is already waiting and it goes on to request the rest, and the
    // waiting count includes status messages, so only a batch of 1 is safe.
    int waiting = 0;
    if (natsSubscription_GetPending(sub_, &waiting, nullptr) == NATS_OK && waiting > 0) req.Batch = 1;
    const int requested = req.Batch;  // _fetch modifies the request
    // Let one fetch overshoot the byte bound by at most 8 MiB, so that a single
    // large message can always be fetched.
    req.MaxBytes = std::max<int64_t>(gate_.free_bytes(), 8 * 1024 * 1024);
    req.Expires = opt_.fetch_expires_ms * 1000000LL;
    natsMsgList list{nullptr, 0};
    natsStatus s = natsSubscription_FetchRequest(&list, sub_, &req);
    if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND || (s == NATS_OK && list.Count == 0)) {
      natsMsgList_Destroy(&list);
      idle = true;
      health_.consumer_running = true;
      continue;
    }
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      health_.consumer_running = false;
      log::limited(log::level::warn, "ingest", "fetch failed; retrying", {{"error", nats_error_text(s)}, {"retry_ms", backoff_ms}});
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
      continue;
    }
    backoff_ms = 50;
    health_.consumer_running = true;
    idle = false;
    if (list.Count > requested) {
      // The client library wrote past its own array: memory is no longer
      // trustworthy. Stop hard; nothing un-acked is lost (JetStream redelivers).
      log::error("ingest", "nats.c returned more messages than requested; aborting",
                 {{"requested", requested}, {"returned", list.Count}});
      std::abort();
    }
    const int64_t now = now_unix_us();
    const int got = list.Count;
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      list.Msgs[i] = nullptr;  // ownership moves to the inbound_message
      auto* in = new inbound_message();
      in->handle = msg;
      in->data = std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
      in->subject = natsMsg_GetSubject(msg);
      in->fetched_at_us = now;
      in->progress_at_us = now;
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        in->stream_seq = meta->Sequence.Stream;
        in->delivered = meta->NumDelivered;
        in->stream_time_us = meta->Timestamp / 1000;
        jsMsgMetaData_Destroy(meta);
      } else {
        in->stream_time_us = now;
      }
      if (in->delivered > 1) m.redeliveries.Increment();
      read_headers(msg, in->headers);
      in->header_wire_bytes = header_wire_size(in->headers);
      in->held_bytes = held_bytes_of(*in);
      gate_.acquire(1, in->held_bytes);
      track(in);
      chunk.push_back(in);
      if (chunk.size() == kDispatchChunk) deliver_(std::exchange(chunk, {}));
    }
    if (!chunk.empty()) deliver_(std::exchange(chunk, {}));
    natsMsgList_Destroy(&list);
    if (no_wait && got < requested && waiting == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(opt_.fetch_wait_ms));
  }
}

void jetstream_source::finish(inbound_message* m, disposition d, int64_t nak_delay_ms) {
  auto* msg = static_cast<natsMsg*>(m->handle);
  untrack(m);  // before the ack: the keepalive thread never touches a settled message
  // After close() nothing reaches the broker: the message is only released
  // (and redelivered after ack_wait).
  natsStatus s = NATS_OK;
  if (!closed_.load(std::memory_order_acquire)) {
    switch (d) {
      case disposition::ack: s = natsMsg_Ack(msg, nullptr); break;
      case disposition::term: s = natsMsg_Term(msg, nullptr); break;
      case disposition::nak: s = natsMsg_NakWithDelay(msg, nak_delay_ms, nullptr); break;
    }
  }
  if (s != NATS_OK)
    // The broker will redeliver after ack_wait; the unique key absorbs the repeat.
    log::limited(log::level::warn, "ingest", "could not acknowledge a message; it will be redelivered",
              {{"stream_seq", m->stream_seq}, {"error", nats_error_text(s)}});
  gate_.release(1, m->held_bytes);
  natsMsg_Destroy(msg);
  delete m;
}

void jetstream_source::settle_message(inbound_message* m, event_outcome merged) {
  switch (merged) {
    case event_outcome::committed: finish(m, disposition::ack); break;
    case event_outcome::dead_lettered: finish(m, disposition::term); break;
    case event_outcome::retry:
      source_metrics::get().messages_handed_back.Increment();
      finish(m, disposition::nak, 1000);
      break;
  }
}

bool jetstream_source::consumer_info(consumer_state& out) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_GetConsumerInfo(&ci, js_, opt_.stream.c_str(), opt_.consumer.c_str(), nullptr, &jerr) != NATS_OK) return false;
  out.num_pending = ci->NumPending;
  out.num_ack_pending = static_cast<uint64_t>(ci->NumAckPending);
  out.num_redelivered = static_cast<uint64_t>(ci->NumRedelivered);
  jsConsumerInfo_Destroy(ci);
  return true;
}

void jetstream_source::close() {
  closed_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(keepalive_mu_);
    closing_ = true;
  }
  keepalive_cv_.notify_all();
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
  if (js_) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 1000;
    js_PublishAsyncComplete(js_, &po);
  }
  if (sub_) {
    natsSubscription_Destroy(sub_);
    sub_ = nullptr;
  }
  health_.nats_closing = true;
  if (nc_) {
    natsConnection_FlushTimeout(nc_, 1000);
    natsConnection_Close(nc_);
  }
  if (js_) {
    jsCtx_Destroy(js_);
    js_ = nullptr;
  }
  if (nc_) {
    natsConnection_Destroy(nc_);
    nc_ = nullptr;
  }
}

}  // namespace trail
