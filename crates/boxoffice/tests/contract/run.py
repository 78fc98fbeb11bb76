"""The API contract attacked from outside (issue 20, D11): seeds a sale through the
services' own APIs — events, a fan admitted by the waiting room with a real access
token, holds, bookings and their tickets, a scanner key, a webhook endpoint — then runs
schemathesis against each service's /openapi.json with those credentials and ids, and
prints one JSON summary line: per service, the operations, those that answered at least
one 2xx, and schemathesis' failures.

    python run.py   (environment: GATEWAY, WAITROOM, ADMIN_KEY, WEBHOOK_SECRET,
                     WORK_DIR, MAX_EXAMPLES, SCHEMATHESIS)
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import requests

GATEWAY = os.environ["GATEWAY"]
WAITROOM = os.environ["WAITROOM"]
ADMIN = os.environ["ADMIN_KEY"]
WORK = pathlib.Path(os.environ["WORK_DIR"])
HERE = pathlib.Path(__file__).parent
http = requests.Session()


def call(method, url, token=None, body=None, expect=(200, 201)):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = http.request(method, url, headers=headers, json=body, timeout=10)
    if reply.status_code not in expect:
        sys.exit(f"seeding: {method} {url} answered {reply.status_code}: {reply.text}")
    return reply.json() if reply.content else None


def section(name, kind, places, price=0):
    shape = {"seats": places} if kind == "reserved" else {"capacity": places}
    return {"name": name, "kind": kind, "price": {"amount_minor": price, "currency": "EUR"}, **shape}


def new_event(name, sections):
    body = {
        "name": name, "max_per_order": 10, "hold_ttl_seconds": 3600, "waitlist_enabled": True, "published": True,
        "refund_policy": [{"before_hours": 0, "refund_percent": 100}], "sections": sections,
    }
    return call("POST", f"{GATEWAY}/v1/events", ADMIN, body)


def admitted_fan(event_id):
    """A fan who joined the queue and was let in: their ticket and access token."""
    ticket = call("POST", f"{WAITROOM}/v1/events/{event_id}/queue")["ticket"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        standing = call("GET", f"{WAITROOM}/v1/events/{event_id}/queue/{ticket}")
        if standing.get("access_token"):
            return ticket, standing["access_token"]
        time.sleep(0.1)
    sys.exit(f"seeding: fan never admitted: {standing}")


def seed():
    event = new_event("Contract", [
        section("Stalls", "reserved", 40), section("Floor", "general_admission", 5000),
        section("Box", "general_admission", 50, price=5000), section("Gallery", "general_admission", 1),
    ])
    event_id = event["id"]
    stalls, floor, box, gallery = (s["id"] for s in event["sections"])
    # The organizer's destructive routes act on an event of their own.
    doomed = new_event("Doomed", [section("Floor", "general_admission", 10)])
    call("PUT", f"{WAITROOM}/v1/admin/events/{event_id}/waitroom", ADMIN,
         {"admit_rate": 100.0, "max_active": 100000, "token_lifetime_secs": 3600})
    ticket, token = admitted_fan(event_id)
    # A line that does not move (its room paused): fans in it, for the queue's routes.
    line = new_event("Line", [section("Floor", "general_admission", 10)])["id"]
    call("PUT", f"{WAITROOM}/v1/admin/events/{line}/waitroom", ADMIN,
         {"admit_rate": 1.0, "max_active": 10, "token_lifetime_secs": 600, "state": "paused"})
    waiting = call("POST", f"{WAITROOM}/v1/events/{line}/queue")["ticket"]
    # A door that asks for proof of work, for the challenge route.
    door = new_event("Door", [section("Floor", "general_admission", 10)])["id"]
    call("PUT", f"{WAITROOM}/v1/admin/events/{door}/waitroom", ADMIN,
         {"admit_rate": 1.0, "max_active": 10, "token_lifetime_secs": 600, "pow_difficulty": 1000})
    holds = f"{GATEWAY}/v1/events/{event_id}/holds"

    def hold(section_id, quantity=1):
        return call("POST", holds, token, {"section_id": section_id, "quantity": quantity})["id"]

    def booking():
        return call("POST", f"{GATEWAY}/v1/events/{event_id}/bookings", token, {"section_id": floor, "quantity": 2})

    booked, cancelled, rotated, by_organizer = booking(), booking(), booking(), booking()
    call("POST", f"{GATEWAY}/v1/events/{event_id}/bookings", token, {"section_id": gallery, "quantity": 1})
    tickets = call("GET", f"{GATEWAY}/v1/events/{event_id}/bookings/{booked['id']}/tickets", token)["tickets"]
    scanner = call("POST", f"{GATEWAY}/v1/admin/events/{event_id}/scanner-keys", ADMIN, {"name": "Gate A"})
    webhook = call("POST", f"{GATEWAY}/v1/admin/webhooks", ADMIN, {"url": "https://hooks.example.com/boxoffice"})["id"]
    paid = hold(box)
    return {
        "event_id": event_id, "doomed_event_id": doomed["id"], "access_token": token, "ticket": ticket,
        "line_event_id": line, "waiting_ticket": waiting, "door_event_id": door,
        "gateway": GATEWAY, "waitroom": WAITROOM, "admin_key": ADMIN, "scanner_key": scanner["key"], "booking_link": booked["link"],
        "open_section": floor, "sold_out_section": gallery, "ticket_secret": tickets[0]["secret"],
        "ticket_id": tickets[0]["id"], "booking_id": booked["id"], "cancelled_booking_id": cancelled["id"],
        "rotated_booking_id": rotated["id"], "organizer_booking_id": by_organizer["id"],
        "webhook_id": webhook,
        "holds": {name: hold(floor) for name in ("read", "released", "left", "confirmed", "kept")},
        "paid_hold": paid, "webhook_secret": os.environ["WEBHOOK_SECRET"],
    }


# Operations that refuse some bodies the JSON Schema allows, with `422` and a code
# saying which rule (each documented): rules across fields (chosen seats or a section and
# a quantity; one of `jti` or `fan_id`), rules of the event at hand (its
# `max_per_order`), and rules no schema states (a venue's labels unique, a refund
# policy's tiers in order, a webhook URL's address public, a scan's time not ahead, a
# provider event's object matching its type).
# For these schemathesis accepts a 422 to a schema-valid body; anywhere else it fails.
# Their bodies also carry integers, which JSON Schema lets be written with a fraction
# (`2.0`) and serde refuses, with `400 bad_request`: accepted here too.
BY_THE_RULES = {
    "POST /v1/events",
    "PATCH /v1/events/{event_id}",
    "POST /v1/admin/events/{event_id}/revocations",
    "POST /v1/admin/webhooks",
    "PATCH /v1/admin/webhooks/{webhook_id}",
    "POST /v1/events/{event_id}/holds",
    "POST /v1/events/{event_id}/bookings",
    "POST /v1/events/{event_id}/waitlist",
    "POST /v1/events/{event_id}/checkins/batch",
    "POST /v1/events/{event_id}/queue",
    "PUT /v1/admin/events/{event_id}/waitroom",
    # A provider event whose object is not what its type names: `400 invalid_event`.
    "POST /v1/payments/webhooks",
}


STREAMS = {"GET /v1/events/{event_id}/seats/stream", "GET /v1/events/{event_id}/queue/{ticket}/stream"}


def toml_value(value):
    return json.dumps(value)


def config(f):
    """schemathesis.toml: the credentials, and which real id each operation names."""
    lines = [
        f"[auth.openapi.access_token]\nbearer = {toml_value(f['access_token'])}",
        f"[auth.openapi.admin_key]\nbearer = {toml_value(ADMIN)}",
        f"[auth.openapi.scanner_key]\nbearer = {toml_value(f['scanner_key'])}",
        f"[auth.openapi.booking_link]\napi_key = {toml_value(f['booking_link'])}",
        "[parameters]",
        f"event_id = {toml_value(f['event_id'])}",
        f"booking_id = {toml_value(f['booking_id'])}",
        f"ticket_id = {toml_value(f['ticket_id'])}",
        f"hold_id = {toml_value(f['holds']['read'])}",
        f"webhook_id = {toml_value(f['webhook_id'])}",
        f"ticket = {toml_value(f['ticket'])}",
    ]
    doomed, cancelled = {"event_id": f["doomed_event_id"]}, {"booking_id": f["cancelled_booking_id"]}
    parameters = {
        "POST /v1/admin/events/{event_id}/cancel": doomed,
        "PATCH /v1/events/{event_id}": doomed,
        "POST /v1/events/{event_id}/bookings/{booking_id}/cancel": cancelled,
        "POST /v1/admin/events/{event_id}/bookings/{booking_id}/cancel": {"booking_id": f["organizer_booking_id"]},
        "POST /v1/events/{event_id}/bookings/{booking_id}/rotate-link": {"booking_id": f["rotated_booking_id"]},
        "DELETE /v1/events/{event_id}/holds/{hold_id}": {"hold_id": f["holds"]["released"]},
        "POST /v1/events/{event_id}/holds/{hold_id}/release": {"hold_id": f["holds"]["left"]},
        "POST /v1/events/{event_id}/holds/{hold_id}/confirm": {"hold_id": f["holds"]["confirmed"]},
        "POST /v1/events/{event_id}/holds/{hold_id}/heartbeat": {"hold_id": f["holds"]["kept"]},
        "POST /v1/events/{event_id}/holds/{hold_id}/checkout": {"hold_id": f["paid_hold"]},
        "GET /v1/events/{event_id}/holds/{hold_id}/payment": {"hold_id": f["paid_hold"]},
        "GET /v1/events/{event_id}/queue/{ticket}": {"event_id": f["line_event_id"], "ticket": f["waiting_ticket"]},
        "GET /v1/events/{event_id}/queue/{ticket}/stream": {"event_id": f["line_event_id"], "ticket": f["waiting_ticket"]},
        "DELETE /v1/events/{event_id}/queue/{ticket}": {"event_id": f["line_event_id"], "ticket": f["waiting_ticket"]},
        "GET /v1/events/{event_id}/queue/challenge": {"event_id": f["door_event_id"]},
    }
    for name in sorted(set(parameters) | BY_THE_RULES | STREAMS):
        lines.append(f"[[operations]]\ninclude-name = {toml_value(name)}")
        if name in STREAMS:
            # An event stream stays open: its first event is what is checked.
            lines.append("max-stream-events = 1")
        if name in parameters:
            lines.append("parameters = { " + ", ".join(f"{k} = {toml_value(v)}" for k, v in parameters[name].items()) + " }")
        if name in BY_THE_RULES:
            lines.append("[operations.checks.positive_data_acceptance]")
            lines.append('expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]')
    return "\n".join(lines) + "\n"


def operations(url):
    """Every operation the service describes, as schemathesis labels them."""
    paths = http.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item}


def attack(service, url, fixtures):
    report = WORK / f"{service}.json"
    command = [
        os.environ["SCHEMATHESIS"], "--config-file", str(WORK / "schemathesis.toml"), "run", f"{url}/openapi.json",
        "--checks", "all", "--max-examples", os.environ.get("MAX_EXAMPLES", "50"),
        "--phases", "examples,coverage,fuzzing,stateful", "--seed", os.environ.get("SEED", "20261204"),
        "--request-timeout", "5", "--max-response-time", "5", "--no-shrink",
        "--report", "json", "--report-json-path", str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": str(HERE),
           "CONTRACT_FIXTURES": json.dumps(fixtures)}
    with open(WORK / f"{service}.log", "w") as log:
        exit_code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=WORK).returncode
    result = json.loads(report.read_text())
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", (WORK / f"{service}.log").read_text())
    answered = {
        operation for operation, phases in result["valid_rates"].items()
        if any(rate["accepted"] > 0 for rate in phases.values())
    }
    return {
        "exit_code": exit_code, "operations": result["operations"]["tested"],
        "answered_2xx": len(answered),
        "without_2xx": sorted(operations(url) - answered),
        "failures": [
            {"code": f["code"], "title": f["title"], "operations": f["operations"]} for f in result["failures"]
        ],
        "errors": result["errors"], "test_cases": result["test_cases"]["generated"],
        "links_followed": f"{links[1]} of {links[2]}" if links else None,
        "seconds": round(result["running_time"], 1), "log": str(WORK / f"{service}.log"),
    }


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    fixtures = seed()
    (WORK / "schemathesis.toml").write_text(config(fixtures))
    summary = {service: attack(service, url, fixtures) for service, url in (("gateway", GATEWAY), ("waitroom", WAITROOM))}
    summary["event_id"] = fixtures["event_id"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
