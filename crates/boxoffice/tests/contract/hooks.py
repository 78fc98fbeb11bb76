"""Schemathesis hooks for the contract run (loaded with SCHEMATHESIS_HOOKS): positive
cases of the operations whose bodies name things (a section, a ticket secret, the fan's
token) sometimes carry real ones, from the fixtures `run.py` seeded, so that the logic
behind the refusals is reached too; and the provider's webhooks are signed with the
gateway's webhook secret, as the provider signs them; and what a positive case of an
operation that uses its target up (leaving the queue, deleting an endpoint) acts on is
made for it just before it is sent. Negative cases are left alone: they must still be
refused."""

import hashlib
import hmac
import json
import os
import time

import requests
import schemathesis
from hypothesis import strategies as st

FIXTURES = json.loads(os.environ["CONTRACT_FIXTURES"])


def _positive(case):
    meta = case.meta
    return meta is None or not meta.generation.mode.is_negative


def _with_real_names(case):
    """The case with the fixtures' real values in its body, when it is positive."""
    if not _positive(case) or not isinstance(case.body, dict):
        return case
    label = case.operation.label
    body = dict(case.body)
    if label in ("POST /v1/events/{event_id}/holds", "POST /v1/events/{event_id}/bookings"):
        body.pop("seats", None)
        body.update(section_id=FIXTURES["open_section"], quantity=1)
    elif label == "POST /v1/events":
        body.update(name="Generated", max_per_order=4, hold_ttl_seconds=600, refund_policy=None, sections=[
            {"name": "Floor", "kind": "general_admission", "price": {"amount_minor": 0, "currency": "EUR"},
             "capacity": 10},
        ])
    elif label == "POST /v1/events/{event_id}/waitlist":
        body.update(section_ids=[FIXTURES["sold_out_section"]], quantity=1)
    elif label == "POST /v1/events/{event_id}/checkins":
        body.update(secret=FIXTURES["ticket_secret"], gate="Gate A")
    elif label == "POST /v1/events/{event_id}/holds/{hold_id}/release":
        body = {"access_token": FIXTURES["access_token"]}
    else:
        return case
    case.body = body
    return case


@schemathesis.hook
def before_generate_case(context, strategy):
    # Both: what the schema generates, and the same with real names.
    return st.one_of(strategy, strategy.map(_with_real_names))


def _fresh_target(case):
    """Path parameters naming something made now, for operations that use theirs up."""
    label = case.operation.label
    if label == "DELETE /v1/events/{event_id}/queue/{ticket}":
        line = FIXTURES["line_event_id"]
        joined = requests.post(f"{FIXTURES['waitroom']}/v1/events/{line}/queue", timeout=5).json()
        return {"event_id": line, "ticket": joined["ticket"]}
    if label == "DELETE /v1/admin/webhooks/{webhook_id}":
        registered = requests.post(
            f"{FIXTURES['gateway']}/v1/admin/webhooks", json={"url": "https://hooks.example.com/gone"},
            headers={"Authorization": f"Bearer {FIXTURES['admin_key']}"}, timeout=5,
        ).json()
        return {"webhook_id": registered["id"]}
    return None


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    fresh = _fresh_target(case)
    if fresh is not None:
        case.path_parameters = {**(case.path_parameters or {}), **fresh}
    if case.operation.label != "POST /v1/payments/webhooks":
        return
    # Signed as the provider signs (t=…,v1=HMAC-SHA256 over "t.body"), over the bytes the
    # request will carry: a JSON body goes out as `requests` writes `json=`, which is
    # `json.dumps` with its defaults. (The body itself is left as generated: bytes in its
    # place would no longer match the schema, and the case would count as negative.)
    payload = json.dumps(case.body).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(FIXTURES["webhook_secret"].encode(), timestamp.encode() + b"." + payload, hashlib.sha256)
    case.headers = {**(case.headers or {}), "Stripe-Signature": f"t={timestamp},v1={digest.hexdigest()}"}
