"""The official `stripe` library against the payments sandbox (run by official_stripe.rs).

Verifies a webhook the sandbox delivered with stripe.Webhook.construct_event, checks
that a tampered body and a wrong secret are refused, reads the PaymentIntent, Refund and
Event through the library with its API base pointed at the sandbox, and creates an intent
with the library's own form encoding (metadata, idempotency key). Prints "ok: <check>"
per check; any failure raises and exits non-zero.
"""

import os
import sys

import stripe

url = os.environ["SANDBOX_URL"]
secret_key = os.environ["SANDBOX_SECRET_KEY"]
webhook_secret = os.environ["WEBHOOK_SECRET"]
signature = os.environ["WEBHOOK_SIGNATURE"]
intent_id = os.environ["INTENT_ID"]
refund_id = os.environ["REFUND_ID"]
with open(os.environ["WEBHOOK_BODY_FILE"], "rb") as f:
    body = f.read()


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAILED: {name} {detail}")
    print(f"ok: {name}")


event = stripe.Webhook.construct_event(body, signature, webhook_secret)
check("webhook verified", event.type == "payment_intent.succeeded" and event.data.object.id == intent_id, event)

tampered = body.replace(b'"succeeded"', b'"canceled"', 1)
assert tampered != body
try:
    stripe.Webhook.construct_event(tampered, signature, webhook_secret)
    check("tampered body refused", False, "construct_event accepted a tampered body")
except stripe.SignatureVerificationError:
    check("tampered body refused", True)

try:
    stripe.Webhook.construct_event(body, signature, "whsec_not_this_one")
    check("wrong secret refused", False, "construct_event accepted a wrong secret")
except stripe.SignatureVerificationError:
    check("wrong secret refused", True)

stripe.api_key = secret_key
stripe.api_base = url
stripe.max_network_retries = 0

intent = stripe.PaymentIntent.retrieve(intent_id)
check(
    "intent read",
    intent.id == intent_id and intent.status == "succeeded" and intent.amount == 4200 and intent.currency == "eur"
    and intent.object == "payment_intent" and intent.client_secret.startswith(intent_id + "_secret_"),
    intent,
)

refund = stripe.Refund.retrieve(refund_id)
check("refund read", refund.id == refund_id and refund.amount == 1200 and refund.status == "succeeded"
      and refund.payment_intent == intent_id, refund)

fetched = stripe.Event.retrieve(event.id)
check("event read", fetched.id == event.id and fetched.type == event.type and fetched.data.object.id == intent_id, fetched)

created = stripe.PaymentIntent.create(
    amount=990, currency="eur", description="from Python", metadata={"hold_id": "h-9", "event_id": "e-9"},
    idempotency_key="python-attempt-1",
)
replayed = stripe.PaymentIntent.create(
    amount=990, currency="eur", description="from Python", metadata={"hold_id": "h-9", "event_id": "e-9"},
    idempotency_key="python-attempt-1",
)
check(
    "intent created",
    created.id == replayed.id and created.metadata["hold_id"] == "h-9" and created.amount == 990
    and created.status == "requires_payment_method",
    created,
)

try:
    stripe.PaymentIntent.create(amount=991, currency="eur", idempotency_key="python-attempt-1")
    check("idempotency conflict refused", False, "a reused key with other parameters was accepted")
except stripe.InvalidRequestError:
    check("idempotency conflict refused", True)
except stripe.IdempotencyError:
    check("idempotency conflict refused", True)

try:
    stripe.api_key = "sk_test_wrong"
    stripe.PaymentIntent.retrieve(intent_id)
    check("wrong key refused", False)
except stripe.AuthenticationError:
    check("wrong key refused", True)
