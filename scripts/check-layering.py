#!/usr/bin/env python3
"""Fails when a source file includes a project header against the flow.

Trail's folders are layers (README "Layout"); each may include only what is
listed for it below: whole folders, or single headers where a layer needs one
seam or one type of another. `make test` runs this (ctest "unit: layering"),
so an include against the flow fails the build's tests, with the offending
line named.

    scripts/check-layering.py [ROOT]
"""
import os
import re
import sys

# folder -> what it may include besides itself: "folder/" (all of it) or "folder/file.h".
ALLOWED = {
    # Time and UUID helpers only: decoding knows nothing of the pipeline.
    "decode": {"common/time.h", "common/uuid.h", "common/sha256.h"},
    # The pipeline's carrier types hold typed events and rejections.
    "common": {"decode/audit_event.h", "decode/message.h", "decode/rejection.h"},
    "config": set(),
    # Keys, signed checkpoints and chain verification over canonical bytes:
    # pure, so the online and offline verifiers share them.
    "integrity": {"common/time.h", "common/sha256.h", "decode/canonical.h", "decode/audit_event.h"},
    # The database side: typed events in, rows out.
    # Components take their own options structs (app/options.cc fills them), never config/.
    "sinks": {"common/", "decode/"},
    # Migrations and the installation's statements use the bounded libpq session.
    "store": {"common/", "decode/canonical.h", "integrity/", "sinks/pg_session.h", "sinks/db_result.h",
              "sinks/copy_encoding.h", "sinks/event_reader.h"},
    # Actors see the broker and the database only through their seams.
    "actors": {"common/", "decode/", "sinks/sink.h", "ingest/source.h"},
    # The broker side settles what the database side committed.
    "ingest": {"common/", "decode/", "sinks/", "integrity/"},
    # MCP's protocol side reaches the ledger only through the query API (a function it is given).
    # Its JSON-RPC bodies are parsed with decode/'s bounded parser.
    "mcp": {"common/time.h", "common/uuid.h", "decode/json_limits.h"},
    # The read side renders stored events with decode/'s codec and reads them
    # through sinks/' session and row reader.
    "api": {"common/", "decode/", "integrity/", "mcp/", "sinks/pg_session.h", "sinks/db_result.h", "sinks/event_reader.h",
            "sinks/event_rows.h"},
}
LAYERS = set(ALLOWED) | {"app", "tests", "load-tests", "examples"}  # the last four may include anything
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main() -> int:
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    problems = []
    checked = 0
    for folder, allowed in sorted(ALLOWED.items()):
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        top = target.split("/", 1)[0]
                        if "/" not in target or top not in LAYERS or top == folder:
                            continue  # a system-style or same-folder include
                        checked += 1
                        if top + "/" in allowed or target in allowed:
                            continue
                        problems.append(f"{rel}:{lineno}: {folder}/ may not include \"{target}\"")
    for p in problems:
        print(p)
    print(f"layering: {checked} cross-folder includes checked, {len(problems)} against the flow")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
