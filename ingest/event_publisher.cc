#include "ingest/event_publisher.h"

#include <algorithm>

#include "common/log.h"
#include "ingest/jetstream.h"

namespace trail {

event_publisher::event_publisher(publisher_options opt) : opt_(std::move(opt)) {}

event_publisher::~event_publisher() {
  if (js_) jsCtx_Destroy(js_);
  if (nc_) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

jsCtx* event_publisher::context(std::string* error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (js_) return js_;
  const auto now = std::chrono::steady_clock::now();
  if (last_attempt_.time_since_epoch().count() != 0 && now - last_attempt_ < std::chrono::seconds(1)) {
    *error = "not connected to NATS (retrying)";
    return nullptr;
  }
  last_attempt_ = now;
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  set_servers(o, opt_.url);
  natsOptions_SetName(o, "traild-api");
  natsOptions_SetTimeout(o, opt_.timeout_ms);
  natsOptions_SetMaxReconnect(o, -1);
  natsOptions_SetReconnectWait(o, 250);
  const natsStatus s = natsConnection_Connect(&nc_, o);
  natsOptions_Destroy(o);
  if (s != NATS_OK) {
    *error = std::string("cannot connect to NATS: ") + natsStatus_GetText(s);
    log::limited(log::level::warn, "api", "the read side cannot reach NATS", {{"url", opt_.url_in_logs}, {"error", *error}});
    nc_ = nullptr;
    return nullptr;
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = opt_.timeout_ms;
  if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK) {
    *error = "cannot create a JetStream context";
    js_ = nullptr;
    return nullptr;
  }
  return js_;
}

std::shared_ptr<void> event_publisher::watch(const std::string& subject, std::function<void()> wake) {
  std::string error;
  if (!context(&error)) return nullptr;
  // The closure outlives the handle until nats.c says no handler runs any
  // more (the subscription's on-complete callback), then is freed.
  auto* closure = new std::function<void()>(std::move(wake));
  auto on_message = [](natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    natsMsg_Destroy(m);
    (*static_cast<std::function<void()>*>(c))();
  };
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, nc_, subject.c_str(), on_message, closure) != NATS_OK) {
    delete closure;
    return nullptr;
  }
  natsSubscription_SetOnCompleteCB(sub, [](void* c) { delete static_cast<std::function<void()>*>(c); }, closure);
  return std::shared_ptr<void>(sub, [](void* p) {
    auto* s = static_cast<natsSubscription*>(p);
    natsSubscription_Unsubscribe(s);
    natsSubscription_Destroy(s);
  });
}

bool event_publisher::publish(const std::string& subject, std::string_view body, const header_list& headers,
                              const std::string& msg_id, std::string* error) {
  jsCtx* js = context(error);
  if (!js) return false;
  // While nats.c reconnects it would buffer the message and wait out the
  // whole PubAck timeout: a request is answered at once instead.
  if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) {
    *error = "not connected to NATS (reconnecting)";
    return false;
  }
  const stored_ack sent = publish_and_wait(js, subject, body, headers, msg_id.c_str(), opt_.timeout_ms);
  if (!sent.ok()) {
    *error = std::string("the broker did not store it: ") + nats_error_text(sent.status, sent.jerr);
    return false;
  }
  return true;
}

bool event_publisher::read_subject(const std::string& stream, const std::string& subject, int64_t since_us,
                                   const std::function<bool(std::string_view body)>& each, std::string* error) {
  jsCtx* js = context(error);
  if (!js) return false;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = opt_.timeout_ms;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  if (since_us > 0) {  // the server refuses a start time of 0
    so.Config.DeliverPolicy = js_DeliverByStartTime;
    so.Config.OptStartTime = since_us * 1000;
  } else {
    so.Config.DeliverPolicy = js_DeliverAll;
  }
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus st = js_SubscribeSync(&sub, js, subject.c_str(), &jo, &so, &jerr);
  if (st != NATS_OK) {
    *error = std::string("cannot read the stream ") + stream + ": " + nats_error_text(st, jerr);
    return false;
  }
  // Nothing to read at all: the consumer says so, no wait for a first message.
  uint64_t pending = 0;
  jsConsumerInfo* ci = nullptr;
  st = natsSubscription_GetConsumerInfo(&ci, sub, &jo, &jerr);
  if (st == NATS_OK && ci) {
    pending = ci->NumPending + ci->Delivered.Consumer;  // some may be on their way already
    jsConsumerInfo_Destroy(ci);
  }
  bool ok = st == NATS_OK;
  if (!ok) *error = std::string("cannot read the stream ") + stream + ": " + nats_error_text(st, jerr);
  bool more = ok && pending > 0;
  while (more) {
    natsMsg* msg = nullptr;
    st = natsSubscription_NextMsg(&msg, sub, opt_.timeout_ms);
    if (st != NATS_OK) {
      *error = std::string("the stream ") + stream + " stopped answering: " + natsStatus_GetText(st);
      ok = false;
      break;
    }
    jsMsgMetaData* meta = nullptr;
    uint64_t left = 0;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      left = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
    }
    more = each(std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)))) && left > 0;
    natsMsg_Destroy(msg);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  return ok;
}

}  // namespace trail
