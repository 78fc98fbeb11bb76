"""Evaluates every PromQL expression of the dashboards and of the alert rules through a
real Prometheus' HTTP API, after a sale was played against boxoffice. Fails if one does
not parse, if a dashboard expression returns no data (the 5xx share and the alert
annotation aside), if a series registered at 0 is missing, if a rule did not load or
evaluate, or if the oversell alert fires.

    python3 scripts/dashboards/check_expressions.py PROMETHEUS_URL EVENT_ID RULES_IN_FILE SALE_START BOARD...
"""
import json, math, re, sys, time, urllib.parse, urllib.request

prom, event, rules_in_file, sale_start, boards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]

# What Grafana would put in for its own variables (the datasource's timeInterval is 15s) and
# for the boards' variables ("All", except the event: the one on sale).
BUILTIN = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__interval_ms": "15000",
           "__range_s": "300", "__range_ms": "300000"}

# Key expressions: (board, panel title, refId) that must return data.
KEYS = [
    ("flash-sale", "Queue length per event", "A"),
    ("flash-sale", "Admission rate: achieved vs configured", "A"),
    ("flash-sale", "Admission rate: achieved vs configured", "B"),
    ("flash-sale", "Active fans per event: active vs max and the sale's budget", "A"),
    ("flash-sale", "Active fans per event: active vs max and the sale's budget", "B"),
    ("flash-sale", "Booking outcomes", "A"),
    ("flash-sale", "Oversold seats", "A"),
    ("flash-sale", "Invariant violations", "A"),
    ("flash-sale", "Latency p99 by route", "A"),
    ("flash-sale", "Why the rate in force is what it is", "A"),
    ("flash-sale", "Slots freed by bookings", "A"),
    ("flash-sale", "Time from booking to slot freed", "A"),
    ("service-health", "Database pool: in use vs max", "A"),
    ("service-health", "Database pool: in use vs max", "C"),
    ("service-health", "Redis command p99 by command", "A"),
    ("service-health", "Resident memory", "A"),
    ("service-health", "Watchdog freshness", "A"),
]
MUST_BE_ZERO = {("flash-sale", "Oversold seats", "A"), ("flash-sale", "Invariant violations", "A")}
# Key expressions that must have been above 0 at some point of the sale (1s steps).
PEAK_ABOVE_ZERO = {("flash-sale", "Queue length per event", "A"),
                   ("flash-sale", "Admission rate: achieved vs configured", "A"),
                   ("flash-sale", "Active fans per event: active vs max and the sale's budget", "A"),
                   ("flash-sale", "Active fans per event: active vs max and the sale's budget", "B"),
                   ("flash-sale", "Booking outcomes", "A"),
                   ("flash-sale", "Latency p99 by route", "A"),
                   ("flash-sale", "Slots freed by bookings", "A"),
                   ("service-health", "Database pool: in use vs max", "C")}
# Every other dashboard expression must return data too (the counters a board plots exist
# at 0 from start-up), except these, which are empty when nothing went wrong.
MAY_BE_EMPTY = {("service-health", "Error rate (5xx share) by route", "A"),   # no 5xx, no series
                ("flash-sale", "annotation boxoffice alerts firing", "-"),
                ("service-health", "annotation boxoffice alerts firing", "-")}
# Series that exist from start-up (registered at 0), by the label a panel groups by: each
# value must be there whether or not the sale incremented it.
EXPECT_SERIES = {
    ("flash-sale", "Booking outcomes", "A"):
        ("outcome", {"success", "seat_unavailable", "seat_contended", "sold_out", "hold_expired"}),
    ("flash-sale", "Order success share by kind", "A"): ("kind", {"hold", "book", "confirm"}),
    ("flash-sale", "Lock contention", "A"): ("kind", {"hold", "book"}),
    ("flash-sale", "Rate-limited requests", "A"): ("limit", {"global", "address", "fan"}),
    ("flash-sale", "Rate-limited requests", "B"): ("limit", {"address", "fan"}),
    ("flash-sale", "Token rejections", "A"): ("reason", {"missing", "expired", "bad_signature", "other_event", "revoked"}),
    ("flash-sale", "Joins per second", "A"): ("queue", {"queue", "pre_queue"}),
    ("service-health", "Scheduler job failures", "A"):
        ("task", {"release_expired_holds", "purge_idempotency_keys", "check_invariants"}),
    ("service-health", "Request rate by component and route", "A"): ("component", {"gateway", "waitroom"}),
}
# Variables whose values are known: they must list at least these.
EXPECT_VALUES = {("service-health", "component"): {"gateway", "waitroom"}}

def get(path, **params):
    url = f"{prom}{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def substitute(expr, values):
    def one(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)

def summary(result):
    data = result["data"]
    if data["resultType"] in ("scalar", "string"):
        return [data["result"][1]]
    return [f"{s['value'][1]}" + (f" {{{', '.join(f'{k}={v}' for k, v in s['metric'].items())}}}" if s["metric"] else "")
            for s in data["result"]]

def peak(query):
    r = get("/api/v1/query_range", query=query, start=sale_start - 1, end=time.time(), step="1s")
    values = [float(v) for s in r.get("data", {}).get("result", []) for _, v in s["values"]]
    values = [v for v in values if math.isfinite(v)]
    return max(values) if values else None

def has_data(result):
    return result["data"]["resultType"] in ("scalar", "string") or bool(result["data"]["result"])

failures, checked, with_data, variable_queries, key_lines, empty = [], 0, 0, 0, [], []
up = get("/api/v1/query", query='up{job="boxoffice"}')
if not (up.get("status") == "success" and up["data"]["result"] and up["data"]["result"][0]["value"][1] == "1"):
    failures.append(f"the boxoffice target is not up: {up}")

# Dashboards: every target's expr, annotation expr, and label_values() variable query.
queries = []
for path in boards:
    board_name = path.rsplit("/", 1)[-1].removesuffix(".json")
    d = json.load(open(path))
    values = dict(BUILTIN)
    for v in d["templating"]["list"]:
        values[v["name"]] = event if v["name"] == "event" else v.get("allValue") or ".*"
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
            if not m:
                failures.append(f"{board_name}: variable {v['name']}: cannot check query {q!r}")
                continue
            r = get(f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1)})
            checked += 1
            variable_queries += 1
            if r.get("status") != "success":
                failures.append(f"{board_name}: variable {v['name']}: {r.get('error')}")
            elif not [x for x in r["data"] if re.search(v.get("regex", "").strip("/") or ".", x)]:
                failures.append(f"{board_name}: variable {v['name']}: {q} lists nothing (regex {v.get('regex')!r})")
            else:
                with_data += 1
                missing = EXPECT_VALUES.get((board_name, v["name"]), set()) - set(r["data"])
                if missing:
                    failures.append(f"{board_name}: variable {v['name']}: {q} lacks {sorted(missing)} (has {r['data']})")
    for a in d.get("annotations", {}).get("list", []):
        if a.get("expr"):
            queries.append((board_name, f"annotation {a['name']}", "-", a["expr"], values))
    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                queries.append((board_name, p["title"], t["refId"], t["expr"], values))
    walk(d["panels"])

found = {(b, t, r) for b, t, r, _, _ in queries}
for key in KEYS + sorted(MAY_BE_EMPTY) + sorted(EXPECT_SERIES):
    if key not in found:
        failures.append(f"expression named by the check missing from the dashboards: {key}")

for board_name, title, ref, expr, values in queries:
    try:
        q = substitute(expr, values)
    except KeyError as e:
        failures.append(f"{board_name}: {title} [{ref}]: {e}")
        continue
    r = get("/api/v1/query", query=q)
    checked += 1
    where = f"{board_name}: {title} [{ref}]"
    if r.get("status") != "success":
        failures.append(f"{where}: {r.get('errorType')}: {r.get('error')}\n    {q}")
        continue
    with_data += has_data(r)
    if not has_data(r):
        empty.append(f"{board_name}: {title} [{ref}]")
        if (board_name, title, ref) not in MAY_BE_EMPTY and (board_name, title, ref) not in KEYS:
            failures.append(f"{where}: returned no data\n    {q}")
    if (board_name, title, ref) in EXPECT_SERIES:
        label, expected = EXPECT_SERIES[(board_name, title, ref)]
        missing = expected - {s["metric"].get(label) for s in r["data"]["result"]}
        if missing:
            failures.append(f"{where}: no series for {label} = {', '.join(sorted(missing))}\n    {q}")
    if (board_name, title, ref) in KEYS:
        values_ = summary(r)
        top = peak(q)
        key_lines.append(f"  {where}: " + ("; ".join(values_[:3]) + (f"; ... ({len(values_)} series)" if len(values_) > 3 else "")
                                              if values_ else "NO DATA") + f"  | peak during the sale: {top}")
        if (board_name, title, ref) in PEAK_ABOVE_ZERO and not (top and top > 0):
            failures.append(f"{where}: never above 0 during the sale (peak {top})\n    {q}")
        if not has_data(r):
            failures.append(f"{where}: key expression returned no data\n    {q}")
        elif (board_name, title, ref) in MUST_BE_ZERO and any(float(v.split()[0]) != 0 for v in values_):
            failures.append(f"{where}: must be 0, is {values_}")

# Rules: loaded, evaluated without error, every expression queried, oversell not firing.
rules = get("/api/v1/rules")
loaded = [rule for g in rules["data"]["groups"] for rule in g["rules"]] if rules.get("status") == "success" else []
if len(loaded) != rules_in_file:
    failures.append(f"Prometheus loaded {len(loaded)} rules, promtool found {rules_in_file} in the file")
for rule in loaded:
    where = f"rule {rule['name']}"
    if rule.get("health") != "ok":
        failures.append(f"{where}: health {rule.get('health')}: {rule.get('lastError')}")
    r = get("/api/v1/query", query=rule["query"])
    checked += 1
    if r.get("status") != "success":
        failures.append(f"{where}: {r.get('errorType')}: {r.get('error')}")
        continue
    with_data += has_data(r)
    if not has_data(r):
        empty.append(f"rule {rule['name']}")
    if rule["name"] == "BoxofficeOversold":
        key_lines.append(f"  {where}: state {rule.get('state')}, health {rule.get('health')}")
        if rule.get("state") != "inactive" or rule.get("alerts"):
            failures.append(f"{where} is {rule.get('state')}: {rule.get('alerts')}")
firing = [f"{a['labels']['alertname']} ({a['state']})" for rule in loaded for a in rule.get("alerts", [])]

print(f"[check-dashboards] {checked} expressions checked ({len(queries)} dashboard panel and annotation queries, "
      f"{variable_queries} variable queries, {len(loaded)} rules), {with_data} with data")
print("[check-dashboards] no data now (allowed: no 5xx, no alert firing, a rule's condition false): " + ("; ".join(empty) or "none"))
print("[check-dashboards] key expressions:")
print("\n".join(key_lines))
print(f"[check-dashboards] alerts pending or firing: {', '.join(firing) or 'none'}")
if failures:
    print(f"[check-dashboards] FAIL: {len(failures)} problem(s):", file=sys.stderr)
    for f in failures:
        print(f"  - {f}", file=sys.stderr)
    sys.exit(1)
print("[check-dashboards] OK: every expression parses, every dashboard expression has data (5xx by route and the alert annotation aside), the rules loaded, no oversell")
