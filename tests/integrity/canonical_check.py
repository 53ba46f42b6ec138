#!/usr/bin/env python3
"""An independent implementation of Trail's canonical event bytes, written
from docs/INTEGRITY.md alone (not from Trail's code), checked against the
SHA-256 digests Trail computed for the same rows.

  canonical_check.py DSN EXPECTED

DSN: a PostgreSQL database holding audit.events rows; EXPECTED: a file with
one line per row, "<tenant_id> <sequence> <sha256 hex of Trail's canonical
bytes>". Reads every row with psql (row_to_json), builds its canonical bytes
as the document says, and exits 1 naming each row whose digest differs.
Then follows each tenant's chain in sequence order (INTEGRITY.md, "The
chain") and names each row whose stored prev_hash or hash is not the link it
computes.
"""
import datetime
import hashlib
import ipaddress
import json
import subprocess
import sys


class Number(str):
    """A JSON number kept as the text PostgreSQL printed."""


def numeric_text(text):
    """A JSON number as PostgreSQL's numeric prints it (INTEGRITY.md, Numbers)."""
    negative = text.startswith("-")
    body = text[1:] if negative else text
    mantissa, _, exponent = body.lower().partition("e")
    x = int(exponent) if exponent else 0
    i, _, f = mantissa.partition(".")
    d = i + f
    p = len(i) + x
    s = max(0, len(f) - x)

    def at(pos):
        return d[pos] if 0 <= pos < len(d) else "0"

    whole = "".join(at(k) for k in range(p)).lstrip("0") or "0"
    fraction = "".join(at(k) for k in range(p, p + s))
    sign = "-" if negative and d.strip("0") else ""
    return sign + whole + ("." + fraction if fraction else "")


def string(s):
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Number):
        return numeric_text(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(string(k) + ":" + canonical(v[k]) for k in keys) + "}"
    raise TypeError(type(v))


def utc_micros(text):
    t = datetime.datetime.fromisoformat(text).astimezone(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def address(text):
    ip = ipaddress.ip_address(text.split("/")[0])
    if ip.version == 4:
        return str(ip)
    words = [int.from_bytes(ip.packed[k:k + 2], "big") for k in range(0, 16, 2)]
    if words[:5] == [0] * 5 and (words[5] == 0xFFFF or (words[5] == 0 and words[6] != 0)):
        v4 = ipaddress.IPv4Address(ip.packed[12:])
        return ("::ffff:" if words[5] == 0xFFFF else "::") + str(v4)
    return ip.compressed


TEXT = ["action", "actor_display_name", "actor_id", "actor_session_id", "actor_type", "actor_user_agent",
        "category", "ce_id", "ce_source", "ce_subject", "ce_type", "correlation_id", "description", "ingest_mode",
        "outcome_error_code", "outcome_status", "request_id", "resource_id", "resource_type", "severity",
        "source_service", "tenant_id", "trace_id"]
JSON_COLUMNS = ["changes", "extra", "metadata", "related_resources"]


def canonical_event(row):
    members = {}
    for k in TEXT:
        members[k] = string(row[k]) if row[k] is not None else "null"
    for k in JSON_COLUMNS:
        members[k] = canonical(row[k])
    members["actor_ip"] = string(address(row["actor_ip"])) if row["actor_ip"] is not None else "null"
    members["occurred_at"] = string(utc_micros(row["occurred_at"]))
    members["recorded_at"] = string(utc_micros(row["recorded_at"]))
    members["sequence"] = str(int(row["sequence"]))
    if len(members) != 31:
        raise ValueError("expected 31 members, built %d" % len(members))
    keys = sorted(members, key=lambda k: k.encode("utf-8"))
    body = "{" + ",".join(string(k) + ":" + members[k] for k in keys) + "}"
    return b"trail.event.v1\n" + body.encode("utf-8")


def main():
    dsn, expected_path = sys.argv[1:3]
    expected = {}
    for line in open(expected_path):
        tenant, seq, digest = line.split()
        expected[(tenant, int(seq))] = digest
    out = subprocess.run(["psql", dsn, "-XqAt", "-c",
                          "SELECT row_to_json(e) FROM audit.events e ORDER BY tenant_id, sequence"],
                         check=True, capture_output=True, text=True).stdout
    bad = 0
    rows = 0
    broken = 0
    tenant, link, expected_seq = None, bytes(32), 1
    for line in out.splitlines():
        row = json.loads(line, parse_float=Number, parse_int=Number)
        key = (row["tenant_id"], int(row["sequence"]))
        canonical_bytes = canonical_event(row)
        if key[0] != tenant:
            tenant, link, expected_seq = key[0], bytes(32), 1
        stored_prev = bytes.fromhex(row["prev_hash"][2:])
        stored_hash = bytes.fromhex(row["hash"][2:])
        computed = hashlib.sha256(link + canonical_bytes).digest()
        if key[1] != expected_seq or stored_prev != link or stored_hash != computed:
            broken += 1
            print("link %s/%s: stored prev %s hash %s, computed prev %s hash %s" %
                  (key[0], key[1], stored_prev.hex(), stored_hash.hex(), link.hex(), computed.hex()))
        link, expected_seq = stored_hash, key[1] + 1
        digest = hashlib.sha256(canonical_bytes).hexdigest()
        rows += 1
        if expected.get(key) != digest:
            bad += 1
            print("row %s/%s: Trail %s, this implementation %s" % (key[0], key[1], expected.get(key), digest))
    if rows != len(expected):
        print("rows: %d in the database, %d expected" % (rows, len(expected)))
        bad += 1
    print("%d rows checked, %d differ" % (rows, bad))
    print("%d links checked, %d broken" % (rows, broken))
    return 1 if bad or broken else 0


if __name__ == "__main__":
    sys.exit(main())
