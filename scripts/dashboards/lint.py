"""Static checks of the Grafana dashboards' JSON, before anything runs: a uid, a schema
version Grafana 10-12 reads, the `datasource` variable every panel uses, targets with
distinct refIds, and unique panel ids and titles (check_expressions.py names panels by
title).

    python3 scripts/dashboards/lint.py dashboards/grafana/*.json
"""
import json, sys
errors = []
for path in sys.argv[1:]:
    d = json.load(open(path))
    if not d.get("uid"): errors.append(f"{path}: no uid")
    if not 36 <= d.get("schemaVersion", 0) <= 41: errors.append(f"{path}: schemaVersion {d.get('schemaVersion')}")
    var = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    if var.get("datasource", {}).get("type") != "datasource" or var["datasource"].get("query") != "prometheus":
        errors.append(f"{path}: no `datasource` variable of type prometheus")
    ids, titles = [], []
    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            titles.append(p["title"])
            walk(p.get("panels", []))
            if p["type"] == "row": continue
            if p.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"{path}: panel {p['title']!r} does not use ${{datasource}}")
            refs = [t.get("refId") for t in p.get("targets", [])]
            if not refs or len(set(refs)) != len(refs) or not all(t.get("expr") for t in p["targets"]):
                errors.append(f"{path}: panel {p['title']!r} needs targets with distinct refIds and an expr")
    walk(d["panels"])
    if len(ids) != len(set(ids)): errors.append(f"{path}: duplicate panel ids")
    if len(titles) != len(set(titles)): errors.append(f"{path}: duplicate panel titles (the check names panels by title)")
for e in errors: print(e, file=sys.stderr)
sys.exit(1 if errors else 0)
