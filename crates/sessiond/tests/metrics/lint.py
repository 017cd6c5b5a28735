"""Parse Prometheus text from stdin with prometheus_client's parser and check
it against the Prometheus naming conventions. Prints one line per problem
and exits 1 if there is any; prints "ok: N families" otherwise."""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
UNITS = ("seconds", "bytes", "total")

text = sys.stdin.read()
problems = []
seen = set()
families = list(text_string_to_metric_families(text))
for family in families:
    name = family.name
    if name in seen:
        problems.append(f"{name}: family appears twice")
    seen.add(name)
    if not NAME.match(name):
        problems.append(f"{name}: not a valid metric name")
    if not name.startswith("sessiond_"):
        problems.append(f"{name}: lacks the sessiond_ prefix")
    if not family.documentation.strip():
        problems.append(f"{name}: no HELP")
    if family.type == "unknown":
        problems.append(f"{name}: no TYPE")
    if family.type == "counter":
        for sample in family.samples:
            if not sample.name.endswith(("_total", "_created")):
                problems.append(f"{sample.name}: counter sample without _total")
    if family.type == "histogram" and not name.endswith(("_seconds", "_bytes")):
        problems.append(f"{name}: histogram without a unit suffix")
    if "second" in name and not name.endswith("_seconds"):
        problems.append(f"{name}: time not in _seconds")
    if "byte" in name and not name.endswith(("_bytes", "_bytes_total")):
        problems.append(f"{name}: size not in _bytes")
    for sample in family.samples:
        for label in sample.labels:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", label) or label.startswith("__"):
                problems.append(f"{sample.name}: bad label name {label!r}")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"ok: {len(families)} families")
