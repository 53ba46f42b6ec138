#pragma once
// The web viewer (viewer/) on the API port: /ui/ serves its three files,
// compiled into the binary (as the migrations and the OpenAPI document are),
// so it works air-gapped. Every answer carries a strict Content-Security-
// Policy: scripts, styles and connections to this origin only, no inline
// script, no frames. The page itself talks to the query API with the token
// its user pastes; nothing here authenticates or reads the ledger.

#include "api/http_types.h"

namespace trail {

void install_viewer(http_router& server);

}  // namespace trail
