"""Verifies one webhook request the outbox relay sent, with the Standard Webhooks
reference library (DECISIONS.md D11): our signing checked by code that is not ours.

Reads {"secret": "whsec_…", "headers": {name: value}, "body": "…"} on stdin; prints
"verified" and exits 0 if `Webhook(secret).verify(body, headers)` accepts it, prints
"rejected: <why>" and exits 1 if it refuses it.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> int:
    request = json.load(sys.stdin)
    headers = {name.lower(): value for name, value in request["headers"].items()}
    try:
        Webhook(request["secret"]).verify(request["body"], headers)
    except WebhookVerificationError as error:
        print(f"rejected: {error}")
        return 1
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
