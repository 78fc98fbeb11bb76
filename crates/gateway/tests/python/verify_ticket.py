"""Verifies an e-ticket secret from the gateway's JWKS alone, as an offline scanner
would, with no boxoffice code: the README's recipe, run by
crates/gateway/tests/it/offline.rs (DECISIONS.md D11). Only the `cryptography`
package and the standard library.

stdin: {"jwks": <the JSON of /.well-known/jwks.json>, "secret": "...", "event_id": "...", "now": <unix seconds>}
stdout: "verified <ticket_id> <issue> <place kind> <place number> <place text>" (exit 0)
        or "rejected: <why>" (exit 1)
"""

import base64
import json
import struct
import sys
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CONTEXT = b"boxoffice.ticket\0"


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(jwks, secret, event_id, now):
    raw = b64url(secret)
    payload, signature = raw[:-64], raw[-64:]
    if len(raw) <= 64 or payload[0] != 1:
        raise ValueError("not a version-1 ticket")
    k = payload[1]
    kid = payload[2 : 2 + k].decode("ascii")
    at = 2 + k
    event, ticket = uuid.UUID(bytes=payload[at : at + 16]), uuid.UUID(bytes=payload[at + 16 : at + 32])
    issue, valid_from, valid_until, kind, number, n = struct.unpack(">IIIBIB", payload[at + 32 : at + 50])
    text = payload[at + 50 : at + 50 + n].decode("utf-8")
    if at + 50 + n != len(payload):
        raise ValueError("trailing bytes")
    keys = [j for j in jwks["keys"] if j["kid"] == kid and j.get("boxoffice_purpose") == "ticket"]
    if not keys or keys[0]["kty"] != "OKP" or keys[0]["crv"] != "Ed25519":
        raise ValueError(f"no ticket key {kid}")
    key = Ed25519PublicKey.from_public_bytes(b64url(keys[0]["x"]))
    key.verify(signature, CONTEXT + payload)  # raises InvalidSignature
    if str(event) != event_id:
        raise ValueError(f"a ticket of event {event}")
    if now < valid_from or (valid_until and now > valid_until):
        raise ValueError("outside its validity window")
    return ticket, issue, ["seat", "general_admission"][kind], number, text


def main():
    request = json.load(sys.stdin)
    try:
        ticket, issue, kind, number, text = verify(
            request["jwks"], request["secret"], request["event_id"], request["now"]
        )
    except (ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError, InvalidSignature) as e:
        print(f"rejected: {type(e).__name__} {e}")
        sys.exit(1)
    print(f"verified {ticket} {issue} {kind} {number} {text}")


if __name__ == "__main__":
    main()
