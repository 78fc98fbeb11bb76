"""Instructions per request from a callgrind dump, in total and by where they went (each
function's own instructions, grouped by crate or purpose by its name)."""
import collections
import re
import sys

GROUPS = [
    (r"hmac|sha2|compress256", "SHA-256 / HMAC (software under valgrind; SHA-NI outside it)"),
    (r"base64", "base64"),
    (r"serde_json|serialize|Serialize|ser::", "JSON"),
    (r"redis::|combine::", "Redis client"),
    (r"hyper|h1|http::|httparse", "HTTP (hyper)"),
    (r"tracing|Span", "tracing"),
    (r"metrics", "metrics"),
    (r"governor|dashmap", "rate limits"),
    (r"mi_|mimalloc|malloc|free|alloc::", "allocation"),
    (r"tokio", "tokio (tasks, timers, I/O)"),
    (r"axum|tower|matchit", "axum / tower"),
    (r"memcpy|memmove|memset|memchr|strlen", "memory copies"),
    (r"fmt|format|Formatter|write_str", "formatting"),
    (r"waitroom|access_token|service_kit", "boxoffice's own code"),
]


def own_costs(path):
    """Each function's own (exclusive) instructions: cost lines, not the calls' lines."""
    names, costs, function, after_call = {}, collections.Counter(), None, False
    for line in open(path):
        line = line.rstrip("\n")
        named = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if named:
            kind, ident, name = named.groups()
            if name:
                names[ident] = name
            if kind == "fn":
                function = names.get(ident, ident)
            continue
        if line.startswith("calls="):
            after_call = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            if after_call:
                after_call = False
                continue
            fields = line.split()
            if len(fields) >= 2 and function:
                costs[function] += int(fields[1])
    return costs


def group(name):
    return next((label for pattern, label in GROUPS if re.search(pattern, name)), "other")


path, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
by_group = collections.Counter()
for function, cost in own_costs(path).items():
    by_group[group(function)] += cost
total = sum(by_group.values())
print(f"instructions per {mode}: {total / count:,.0f}")
for label, cost in by_group.most_common():
    print(f"  {cost / count:>9,.0f}  {label}")
