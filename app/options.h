#pragma once
// The wiring layer's one job besides main(): each component takes only its
// own options struct (declared in its header), and these functions fill them
// from the configuration, whose knobs and defaults are declared once, in
// config/config.cc. Components therefore never see config/.

#include <cstddef>

#include "actors/pipeline.h"
#include "api/auth.h"
#include "api/http_listener.h"
#include "api/ledger_reader.h"
#include "api/query_routes.h"
#include "ingest/checkpointer.h"
#include "ingest/event_publisher.h"
#include "config/config.h"
#include "ingest/dead_letter.h"
#include "ingest/finalizer.h"
#include "ingest/jetstream.h"
#include "ingest/outbox.h"
#include "sinks/postgres_writer.h"
#include "store/retention.h"

namespace trail {

pg_timeouts pg_timeouts_of(const config& c);
// `max_message_bytes`: the broker's max_payload (every committed copy must fit).
decoder_limits decoder_limits_of(const config& c, size_t max_message_bytes);
pipeline_options pipeline_options_of(const config& c, size_t max_message_bytes);
writer_pool_options writer_pool_options_of(const config& c);
source_options source_options_of(const config& c);
finalizer_options finalizer_options_of(const config& c);
outbox_options outbox_options_of(const config& c);
dead_letter_options dead_letter_options_of(const config& c);
checkpointer_options checkpointer_options_of(const config& c);
retention_options retention_options_of(const config& c);
// The checkpoint signing key (integrity.signing_key_file), nullopt when none is
// configured; false with `error` when the file cannot be read or parsed.
bool signing_key_of(const config& c, std::optional<integrity::signing_key>& out, std::string* error);
// The verifier key the API and verification use: integrity.public_key_file,
// or the signing key's. nullopt when neither is configured.
bool verifier_key_of(const config& c, std::optional<integrity::verifier_key>& out, std::string* error);
// The read side's credentials: reads the key files the configuration names.
// False with `error` naming the setting when one cannot be read or parsed.
bool auth_options_of(const config& c, auth_options& out, std::string* error);
reader_options reader_options_of(const config& c);
// The routes' options; `max_message_bytes` until the broker tells its own.
route_options route_options_of(const config& c, size_t max_message_bytes);
http_limits http_limits_of(const config& c);
publisher_options publisher_options_of(const config& c);
// Whether committed events go through the outbox: a committed stream to
// republish into (core publishes have no confirmation to wait for).
bool outbox_enabled(const config& c);

}  // namespace trail
