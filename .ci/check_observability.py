#!/usr/bin/env python3
"""Checks the alert rules and the dashboard against the code.

- deploy/prometheus/rules.yaml (plain rules) and the PrometheusRule in
  deploy/prometheus/prometheusrule.yaml hold identical groups;
- every metric an alert expression or a dashboard query names is one the code exports
  (.ci/metrics.py reads them from the `metrics::counter!/gauge!/histogram!` calls), histograms as
  their `_bucket`/`_sum`/`_count` series, and every label a selector matches on is one the code
  sets or one the scrape adds (TARGET_LABELS);
- every alert has a severity, a summary and a runbook link to a heading of docs/OPERATIONS.md;
- the dashboard parses, has a row per service, and each panel a title and at least one query;
- every exported metric has a `# HELP` text in crates/bootstrap/src/catalogue.rs (of the same kind),
  and the catalogue lists no metric nobody exports.

A self-test first shows the check refusing an invented metric and an invented label.
`promtool check rules` / `promtool test rules` (syntax, evaluation) run beside it in .ci/run.
"""
import json
import pathlib
import re
import sys

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import metrics  # noqa: E402

# Labels the scrape adds (deploy/prometheus/podmonitor.yaml and prometheus.yml set `service`).
TARGET_LABELS = {"service", "pod", "namespace", "instance", "job"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"up": set()}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "Inf", "NaN",
            # aggregation operators, which may be followed by `by (…)` before their parenthesis
            "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
            "count_values", "group"}
SERVICES = ["proxy", "verification", "submission", "test-result", "portal", "distribution"]

IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def check_expr(expr, known, where, errors):
    """Every series `expr` selects is known, with known labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables ($__rate_interval)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    for name, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", text):
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
        if name and name in known:
            unknown = labels - known[name] - TARGET_LABELS
            if unknown:
                errors.append(f"{where}: {name} has no label {', '.join(sorted(unknown))}")
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    for m in IDENT.finditer(text):
        name = m.group(0)
        after = text[m.end():].lstrip()
        if name in KEYWORDS or after.startswith("("):
            continue  # an operator or a function
        if text[max(0, m.start() - 1)].isdigit():
            continue  # a unit or exponent after a number
        if name not in known:
            errors.append(f"{where}: {name} is not a metric the code exports")


def selftest(known):
    errors = []
    check_expr('sum(rate(openwarn_invented_total[5m]))', known, "selftest", errors)
    check_expr('rate(openwarn_http_requests_total{colour="red"}[5m])', known, "selftest", errors)
    ok = []
    check_expr('sum by (service, route) (rate(openwarn_http_requests_total{status=~"5..",service!=""}[5m])) '
               '/ ignoring(le) histogram_quantile(0.99, sum by (le) (rate(openwarn_http_request_duration_seconds_bucket[$__rate_interval]))) > 2e3',
               known, "selftest", ok)
    described = metrics.undescribed(
        {"openwarn_a_total": ("counter", set()), "openwarn_b": ("gauge", set()), "openwarn_c": ("gauge", set())},
        {"openwarn_b": ("counter", "B."), "openwarn_c": ("gauge", "C."), "openwarn_d": ("gauge", "D.")})
    return (len(errors) == 2 and "openwarn_invented_total" in errors[0] and "colour" in errors[1] and not ok
            and len(described) == 3 and "openwarn_a_total" in described[0] and "openwarn_b" in described[1]
            and "openwarn_d" in described[2],
            errors + ok + described)


def anchors(markdown):
    """GitHub's anchors of a document's headings."""
    out = set()
    for heading in re.findall(r"^#+\s+(.*)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    exported = metrics.exported(root)
    known = metrics.series(exported)
    known.update(PROMETHEUS_SERIES)
    errors = []
    described = metrics.catalogue(root)
    errors.extend(metrics.undescribed(exported, described))
    if not any(n.startswith("openwarn_") for n in known):
        errors.append("code: found no exported metrics")
    passed, found = selftest(known)
    if not passed:
        errors.append(f"selftest: the check does not refuse an invented metric and label: {found}")

    plain = yaml.safe_load((root / "deploy/prometheus/rules.yaml").read_text())
    operator = yaml.safe_load((root / "deploy/prometheus/prometheusrule.yaml").read_text())
    if operator.get("kind") != "PrometheusRule" or operator.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append("prometheusrule.yaml: not a monitoring.coreos.com/v1 PrometheusRule")
    if operator.get("spec", {}).get("groups") != plain.get("groups"):
        errors.append("prometheusrule.yaml: spec.groups differ from rules.yaml's groups (keep them identical)")
    operations = (root / "docs/OPERATIONS.md").read_text() if (root / "docs/OPERATIONS.md").exists() else ""
    headings = anchors(operations)
    alerts = 0
    for group in plain.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            where = f"rules.yaml {group['name']}/{name}"
            check_expr(rule["expr"], known, where, errors)
            if "alert" in rule:
                alerts += 1
                if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
                    errors.append(f"{where}: severity must be critical or warning")
                annotations = rule.get("annotations", {})
                if not annotations.get("summary"):
                    errors.append(f"{where}: no summary")
                runbook = annotations.get("runbook_url", "")
                if not runbook.startswith("docs/OPERATIONS.md#") or runbook.split("#", 1)[1] not in headings:
                    errors.append(f"{where}: runbook_url {runbook!r} is not a heading of docs/OPERATIONS.md")

    dashboard_path = root / "deploy/grafana/openwarn.json"
    dashboard = json.loads(dashboard_path.read_text())
    queries = 0
    rows = []

    def walk(panels):
        nonlocal queries
        for panel in panels:
            if panel.get("type") == "row":
                rows.append(panel.get("title", ""))
                walk(panel.get("panels", []))
                continue
            where = f"openwarn.json panel {panel.get('title')!r}"
            if not panel.get("title"):
                errors.append(f"{where}: no title")
            targets = [t for t in panel.get("targets", []) if t.get("expr")]
            if not targets:
                errors.append(f"{where}: no query")
            for target in targets:
                queries += 1
                check_expr(target["expr"], known, where, errors)

    walk(dashboard.get("panels", []))
    for service in SERVICES:
        if not any(service in row.lower() for row in rows):
            errors.append(f"openwarn.json: no row for {service}")

    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} observability problem(s)", file=sys.stderr)
        return 1
    print(f"{alerts} alerts and {queries} dashboard queries use only the {len(known)} series the code exports; "
          f"rules.yaml and the PrometheusRule agree; all {len(exported)} metrics have a # HELP text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
