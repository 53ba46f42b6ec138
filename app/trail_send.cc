// trail-send: publishes audit events to JetStream and waits for each PubAck.
//
//   trail-send '{"tenant_id":"acme", ...}'          one event (bare or CloudEvents JSON)
//   trail-send < events.jsonl                        one event per line
//   trail-send -H ce-specversion:1.0 -H ce-id:1 ...  headers (binary mode)
//
// The server URL comes from --url, else TRAIL_NATS_URL, else .dev/env.

#include <CLI/CLI.hpp>
#include <nats/nats.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  CLI::App app{"trail-send: publish audit events to JetStream"};
  std::string url;
  if (const char* u = std::getenv("TRAIL_NATS_URL")) url = u;
  std::string subject = "audit.events";
  std::vector<std::string> headers;
  std::string msg_id;
  std::vector<std::string> events;
  app.add_option("--url", url, "NATS URL (default: $TRAIL_NATS_URL or the one in .dev/env)");
  app.add_option("-s,--subject", subject, "subject (default audit.events)");
  app.add_option("-H,--header", headers, "header as Name:Value (repeatable)");
  app.add_option("--msg-id", msg_id, "Nats-Msg-Id for broker-side deduplication");
  app.add_option("event", events, "event JSON; without it, one event per line from stdin");
  CLI11_PARSE(app, argc, argv);

  if (url.empty()) {
    std::ifstream env(".dev/env");
    for (std::string line; std::getline(env, line);)
      if (line.rfind("TRAIL_NATS_URL=", 0) == 0) url = line.substr(15);
  }
  if (url.empty()) url = "nats://127.0.0.1:4222";

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK || natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
    std::cerr << "trail-send: cannot connect to " << url << ": " << nats_GetLastError(nullptr) << "\n";
    return 1;
  }
  auto send = [&](const std::string& body) {
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    for (const auto& h : headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos) continue;
      natsMsgHeader_Add(msg, h.substr(0, colon).c_str(), h.substr(colon + 1).c_str());
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    if (!msg_id.empty()) po.MsgId = msg_id.c_str();
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&ack, js, msg, &po, &jerr);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      std::cerr << "trail-send: publish failed: " << natsStatus_GetText(s) << " " << nats_GetLastError(nullptr) << "\n";
      return false;
    }
    std::cout << "stored in stream " << ack->Stream << " at sequence " << ack->Sequence
              << (ack->Duplicate ? " (duplicate, dropped by the broker)" : "") << "\n";
    jsPubAck_Destroy(ack);
    return true;
  };
  bool ok = true;
  if (!events.empty()) {
    for (const auto& e : events) ok = send(e) && ok;
  } else {
    for (std::string line; std::getline(std::cin, line);)
      if (!line.empty()) ok = send(line) && ok;
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return ok ? 0 : 1;
}
