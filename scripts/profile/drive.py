"""Drives a waiting room under callgrind: an event and 300 fans in line, a warm-up,
then zeroes callgrind's counters, sends COUNT polls (cycling over 200 fans deep in line)
or COUNT joins of new fans on one keep-alive connection, and dumps the counters."""
import argparse
import http.client
import json
import subprocess
import uuid

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["poll", "join"], required=True)
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--valgrind-pid", required=True)
args = parser.parse_args()

connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)


def request(method, path, body=None, headers=None):
    headers = {"Content-Type": "application/json"} | (headers or {})
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


event = str(uuid.uuid4())
settings = {"admit_rate": 1, "max_active": 1, "token_lifetime_secs": 600}
status, body = request("PUT", f"/v1/admin/events/{event}/waitroom", settings,
                       {"Authorization": "Bearer dev-admin-key-change-me"})
assert status in (200, 201), (status, body)
tickets = []
for i in range(300):
    status, body = request("POST", f"/v1/events/{event}/queue", {"fan_id": f"fan-{i:05}"})
    assert status in (200, 201), (status, body)
    tickets.append(json.loads(body)["ticket"])
tickets = tickets[100:]


def send(i):
    if args.mode == "join":
        status, body = request("POST", f"/v1/events/{event}/queue", {"fan_id": f"joiner-{i:07}"})
        assert status == 201, (status, body)
    else:
        status, body = request("GET", f"/v1/events/{event}/queue/{tickets[i % len(tickets)]}")
        assert status == 200, (status, body)
    return body


for i in range(200):
    send(10_000_000 - 1 - i)
subprocess.run(["callgrind_control", "--zero", args.valgrind_pid], check=True, capture_output=True)
for i in range(args.count):
    body = send(i)
subprocess.run(["callgrind_control", "--dump", args.valgrind_pid], check=True, capture_output=True)
print(f"{args.count} {args.mode}s sent; the last answer was {len(body)} bytes")
