#!/usr/bin/env python3
"""Checks the Grafana dashboards and Prometheus alert rules of polyledger.

    python3 scripts/check-dashboards.py --metrics FILE
    python3 scripts/check-dashboards.py --metrics http://127.0.0.1:8080/metrics
    curl -s http://127.0.0.1:8080/metrics | python3 scripts/check-dashboards.py --metrics -

1. Every dashboards/*.json is well formed: title, uid (unique), schemaVersion 39, the
   variables datasource / instance / ledger, and every panel with a unique integer id, a
   type, a title, a gridPos inside the 24-column grid (no two panels overlapping), the
   ${datasource} data source, fieldConfig.defaults.unit and targets with expr and refId
   (row panels are layout only: id, type, title, gridPos). Expressions use only defined
   variables, rate()/increase() use [$__rate_interval], and histogram_quantile() keeps
   `le` in its aggregation.
2. Every rule of dashboards/alerts.yml has alert, expr, for, labels.severity,
   annotations.summary and annotations.runbook, and the runbook's anchor exists (in the
   file it links to, docs/OPERATIONS.md). `promtool check rules` runs too when
   promtool is installed (--no-promtool skips it).
3. With --metrics (a Prometheus text exposition: a file, `-` for standard input, or an
   http(s) URL): every metric name used in an expr of a dashboard or a rule appears in
   it. Names Prometheus creates itself (up, scrape_*, ALERTS, …) are allowed; --allow
   NAME adds more.

Exits 0 when everything holds, 1 with the list of problems otherwise, 2 on bad usage.
Standard library only; PyYAML is used for alerts.yml when installed, otherwise a small
reader for the simple style that file is written in (--no-yaml forces it).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 39
DATASOURCE = "${datasource}"

# Metrics Prometheus makes itself, never on a node's /metrics.
PROMETHEUS_METRICS = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
    "scrape_timeout_seconds", "scrape_sample_limit", "scrape_body_size_bytes",
    "ALERTS", "ALERTS_FOR_STATE",
}

# Grafana's built-in variables.
GRAFANA_VARIABLES = {
    "__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
    "__range_ms", "__from", "__to", "__dashboard", "__name", "__org", "__user",
    "__timeFilter", "__auto_interval", "__auto",
}

REQUIRED_VARIABLES = {
    "datasource": {"type": "datasource", "query": "prometheus"},
    "instance": {"type": "query", "query": "label_values(polyledger_build_info, instance)",
                 "multi": True, "includeAll": True},
    "ledger": {"type": "query",
               "query": 'label_values(polyledger_ledger_height{instance=~"$instance"}, ledger)',
               "multi": True, "includeAll": True},
}

SEVERITIES = {"critical", "warning", "info"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# ---------------------------------------------------------------------------------------
# PromQL: the metric names an expression reads
# ---------------------------------------------------------------------------------------

# Keywords and operators spelled as identifiers. Anything followed by `(` is a function
# or an aggregation and is skipped on that ground, whatever its name.
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "bool", "offset", "atan2", "inf", "nan", "start", "end",
}
# Aggregation operators: also followed by `by (…)`/`without (…)` before their argument.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
# Keywords followed by a parenthesised list of label names (not an expression).
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

IDENT = r"[A-Za-z_:][A-Za-z0-9_:]*"
TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![A-Za-z0-9_:])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>""" + IDENT + r""")
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def strip_strings(expr):
    """Replaces every string literal ("…", '…', `…`) by an empty "" literal."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < len(expr) and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            out.append('""')
            i = j + 1
        elif c == "#":  # a comment runs to the end of the line
            while i < len(expr) and expr[i] != "\n":
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def replace_grafana_variables(expr):
    """Replaces $var, ${var}, ${var:format} and [[var]] outside strings by `0`."""
    expr = re.sub(r"\$\{[^}]*\}|\$" + IDENT + r"|\[\[[^\]]*\]\]", " 0 ", expr)
    return expr


def metric_names(expr):
    """The metric names an expression reads, in order of first use.

    Crude but correct for what dashboards and rules hold: strings and comments are
    removed; `{…}` selectors and `[…]` ranges are dropped (a `__name__="x"` matcher is
    read first); an identifier followed by `(` is a function or aggregation; the label
    lists after by/without/on/ignoring/group_left/group_right are skipped, and so are
    keywords, numbers and durations, and so is an aggregation followed by by/without.
    What is left is a metric name.
    """
    names = []

    def add(name):
        if name not in names:
            names.append(name)

    # __name__ matchers, read before strings are removed.
    for match in re.finditer(r"__name__\s*=\s*\"([^\"]+)\"|__name__\s*=\s*'([^']+)'", expr):
        add(match.group(1) or match.group(2))
    text = strip_strings(expr)
    # Selectors and ranges (their content: label matchers, durations, variables).
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = replace_grafana_variables(text)
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(text)
              if m.lastgroup != "space"]
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind != "ident":
            i += 1
            continue
        lower = value.lower()
        if lower in LABEL_LIST_KEYWORDS:
            i += 1
            if following == "(":  # skip the label list
                while i < len(tokens) and tokens[i][1] != ")":
                    i += 1
            i += 1
            continue
        if lower == "offset":  # offset 5m / offset -5m
            i += 1
            continue
        if following == "(" or lower in PROMQL_KEYWORDS or (
                lower in AGGREGATIONS and following.lower() in ("by", "without")):
            i += 1
            continue
        # The previous token `@` makes `start`/`end` modifiers; numbers are not idents.
        add(value)
        i += 1
    return names


def histogram_base(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def balanced_argument(text, open_index):
    """The text between the parenthesis at open_index and its match."""
    depth = 0
    for j in range(open_index, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return text[open_index + 1: j]
    return text[open_index + 1:]


def lint_expr(expr, in_dashboard, variables):
    """Problems in one expression, as strings."""
    problems = []
    text = strip_strings(expr)
    if text.count("(") != text.count(")"):
        problems.append("unbalanced parentheses")
    if text.count("{") != text.count("}") or text.count("[") != text.count("]"):
        problems.append("unbalanced braces or brackets")
    if in_dashboard:
        variable_use = r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\$([A-Za-z_]\w*)"
        for match in re.finditer(variable_use, expr):
            name = match.group(1) or match.group(2)
            if name not in variables and name not in GRAFANA_VARIABLES:
                problems.append(f"undefined variable ${name}")
        for match in re.finditer(r"\b(rate|irate|increase)\s*\(", text):
            argument = balanced_argument(text, match.end() - 1)
            ranges = re.findall(r"\[([^\]]*)\]", argument)
            if not ranges:
                problems.append(f"{match.group(1)}() without a range")
            elif ranges[-1].strip() != "$__rate_interval":
                problems.append(f"{match.group(1)}() over [{ranges[-1]}], not "
                                "[$__rate_interval]")
    for match in re.finditer(r"\bhistogram_quantile\s*\(", text):
        argument = balanced_argument(text, match.end() - 1)
        if "_bucket" not in argument:
            problems.append("histogram_quantile() of no _bucket series")
        grouping = re.search(r"\b(by|without)\s*\(([^)]*)\)", argument)
        if grouping:
            labels = {label.strip() for label in grouping.group(2).split(",")}
            if (grouping.group(1) == "by") != ("le" in labels):
                problems.append("histogram_quantile() aggregation drops `le`")
        elif re.search(r"\b(sum|max|min|avg)\s*\(", argument):
            problems.append("histogram_quantile() aggregation without `by (le, …)`")
    return list(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------

def is_datasource_ref(value):
    if value == DATASOURCE:
        return True
    return isinstance(value, dict) and value.get("uid") == DATASOURCE


def variable_query(variable):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    return query if isinstance(query, str) else ""


def normalise(text):
    return re.sub(r"\s+", "", text or "")


def flatten_panels(panels):
    """(panel, is top level): the panels and those inside collapsed rows."""
    for panel in panels:
        yield panel, True
        if isinstance(panel, dict) and panel.get("type") == "row":
            for child in panel.get("panels") or []:
                yield child, False


def check_dashboard(path, problems, exprs):
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path

    def fail(message):
        problems.append(f"{where}: {message}")

    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"not valid JSON: {error}")
        return None
    if not isinstance(dashboard, dict):
        fail("not a JSON object")
        return None
    for key in ("title", "uid"):
        if not isinstance(dashboard.get(key), str) or not dashboard[key].strip():
            fail(f"missing or empty `{key}`")
    uid = dashboard.get("uid")
    if isinstance(uid, str) and (len(uid) > 40 or not re.fullmatch(r"[A-Za-z0-9_-]+", uid)):
        fail(f"uid {uid!r}: at most 40 characters of [A-Za-z0-9_-]")
    if dashboard.get("schemaVersion") != SCHEMA_VERSION:
        fail(f"schemaVersion is {dashboard.get('schemaVersion')!r}, not {SCHEMA_VERSION}")

    variables = {}
    templating = dashboard.get("templating")
    var_list = templating.get("list") if isinstance(templating, dict) else None
    if not isinstance(var_list, list):
        fail("missing templating.list")
        var_list = []
    for variable in var_list:
        if isinstance(variable, dict) and isinstance(variable.get("name"), str):
            variables[variable["name"]] = variable
    for name, wanted in REQUIRED_VARIABLES.items():
        variable = variables.get(name)
        if variable is None:
            fail(f"variable `{name}` missing")
            continue
        if variable.get("type") != wanted["type"]:
            fail(f"variable `{name}`: type {variable.get('type')!r}, not {wanted['type']!r}")
        if normalise(variable_query(variable)) != normalise(wanted["query"]):
            fail(f"variable `{name}`: query {variable_query(variable)!r}, not "
                 f"{wanted['query']!r}")
        for flag in ("multi", "includeAll"):
            if flag in wanted and variable.get(flag) is not wanted[flag]:
                fail(f"variable `{name}`: `{flag}` must be {str(wanted[flag]).lower()}")
        if wanted["type"] == "query" and not is_datasource_ref(variable.get("datasource")):
            fail(f"variable `{name}`: datasource must be {DATASOURCE}")
    for name, variable in variables.items():
        if variable.get("type") != "query":
            continue
        query = variable_query(variable).strip()
        # label_values(SELECTOR, label) and query_result(EXPR) read metrics;
        # label_values(label), label_names(), metrics(…) do not.
        match = re.fullmatch(r"label_values\((.*),\s*" + IDENT + r"\s*\)", query, re.DOTALL) \
            or re.fullmatch(r"query_result\((.*)\)", query, re.DOTALL)
        if match:
            exprs.append((f"{where} variable `{name}`", match.group(1), False))

    panels = dashboard.get("panels")
    if not isinstance(panels, list) or not panels:
        fail("no `panels`")
        return dashboard
    ids = {}
    boxes = []
    for panel, top_level in flatten_panels(panels):
        if not isinstance(panel, dict):
            fail("a panel that is not an object")
            continue
        pid = panel.get("id")
        title = panel.get("title")
        label = f"panel {pid!r} ({title!r})"
        if not isinstance(pid, int) or isinstance(pid, bool):
            fail(f"{label}: `id` must be an integer")
        elif pid in ids:
            fail(f"{label}: id {pid} already used by panel {ids[pid]!r}")
        else:
            ids[pid] = title
        if not isinstance(panel.get("type"), str) or not panel["type"]:
            fail(f"{label}: missing `type`")
        if not isinstance(title, str) or not title.strip():
            fail(f"{label}: missing `title`")
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(
                isinstance(grid.get(k), int) and not isinstance(grid.get(k), bool)
                for k in ("h", "w", "x", "y")):
            fail(f"{label}: `gridPos` needs integer h, w, x, y")
        elif grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["y"] < 0 \
                or grid["x"] + grid["w"] > 24:
            fail(f"{label}: gridPos {grid} is outside the 24-column grid")
        elif top_level:  # children of collapsed rows have their own layout
            boxes.append((label, grid))
        if panel.get("type") == "row":
            continue
        if not is_datasource_ref(panel.get("datasource")):
            fail(f"{label}: datasource must be {DATASOURCE}")
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not isinstance(unit, str) or not unit:
            fail(f"{label}: missing fieldConfig.defaults.unit")
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            fail(f"{label}: no `targets`")
            continue
        refs = set()
        for target in targets:
            if not isinstance(target, dict):
                fail(f"{label}: a target that is not an object")
                continue
            ref = target.get("refId")
            if not isinstance(ref, str) or not ref:
                fail(f"{label}: a target without `refId`")
            elif ref in refs:
                fail(f"{label}: refId {ref} used twice")
            refs.add(ref)
            if "datasource" in target and not is_datasource_ref(target["datasource"]):
                fail(f"{label} target {ref}: datasource must be {DATASOURCE}")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                fail(f"{label} target {ref}: missing `expr`")
                continue
            for problem in lint_expr(expr, True, variables):
                fail(f"{label} target {ref}: {problem}: {expr}")
            exprs.append((f"{where} {label} target {ref}", expr, True))
    for i, (label_a, a) in enumerate(boxes):
        for label_b, b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] \
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                fail(f"{label_a} overlaps {label_b}")
    return dashboard


# ---------------------------------------------------------------------------------------
# Alert rules
# ---------------------------------------------------------------------------------------

def yaml_scalar(text):
    text = text.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return json.loads(text)
    if " #" in text:  # a comment after a plain scalar
        text = text.split(" #", 1)[0].rstrip()
    return text


def read_simple_yaml(text):
    """A reader for the block-style YAML subset alerts.yml is written in: mappings,
    sequences of mappings, plain/quoted scalars and |/> block scalars."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            lines.append(None)
        else:
            lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip(), raw))
    position = [0]

    def skip_blank():
        while position[0] < len(lines) and lines[position[0]] is None:
            position[0] += 1

    def block_scalar(indicator, parent_indent):
        folded = indicator.startswith(">")
        collected, indent = [], None
        while position[0] < len(lines):
            line = lines[position[0]]
            if line is None:
                collected.append("")
                position[0] += 1
                continue
            if line[0] <= parent_indent:
                break
            indent = line[0] if indent is None else indent
            collected.append(line[2][indent:])
            position[0] += 1
        while collected and collected[-1] == "":
            collected.pop()
        joined = (" " if folded else "\n").join(collected)
        return joined if indicator.endswith("-") else joined + "\n"

    def value_after_key(rest, indent):
        if rest in ("|", "|-", ">", ">-"):
            return block_scalar(rest, indent)
        if rest == "":
            skip_blank()
            if position[0] < len(lines) and lines[position[0]][0] >= indent \
                    and lines[position[0]][1].startswith("- "):
                return parse_block(lines[position[0]][0])
            if position[0] < len(lines) and lines[position[0]][0] > indent:
                return parse_block(lines[position[0]][0])
            return None
        if rest == "[]":
            return []
        if rest == "{}":
            return {}
        if rest.startswith("[") and rest.endswith("]"):
            return [yaml_scalar(item) for item in rest[1:-1].split(",") if item.strip()]
        return yaml_scalar(rest)

    def parse_mapping(indent, first_line=None):
        result = {}
        while True:
            if first_line is not None:
                content, first_line = first_line, None
            else:
                skip_blank()
                if position[0] >= len(lines) or lines[position[0]][0] != indent \
                        or lines[position[0]][1].startswith("- "):
                    return result
                content = lines[position[0]][1]
                position[0] += 1
            match = re.match(r"^([^:'\"]+|'[^']*'|\"[^\"]*\"):(?:\s+(.*))?$", content)
            if not match:
                raise ValueError(f"cannot read YAML line: {content!r}")
            key = yaml_scalar(match.group(1))
            result[key] = value_after_key((match.group(2) or "").strip(), indent)

    def parse_block(indent):
        skip_blank()
        if lines[position[0]][1].startswith("- "):
            items = []
            while True:
                skip_blank()
                if position[0] >= len(lines) or lines[position[0]][0] != indent \
                        or not lines[position[0]][1].startswith("- "):
                    return items
                line = lines[position[0]]
                position[0] += 1
                content = line[1][2:].strip()
                item_indent = indent + (len(line[1]) - len(line[1][2:].lstrip()))
                if re.match(r"^([^:'\"]+|'[^']*'|\"[^\"]*\"):(\s|$)", content):
                    items.append(parse_mapping(item_indent, content))
                else:
                    items.append(yaml_scalar(content))
        return parse_mapping(indent)

    skip_blank()
    if position[0] >= len(lines):
        return None
    document = parse_block(lines[position[0]][0])
    skip_blank()
    if position[0] < len(lines):
        raise ValueError(f"cannot read YAML line: {lines[position[0]][1]!r}")
    return document


def load_yaml(path, use_pyyaml):
    text = path.read_text(encoding="utf-8")
    if use_pyyaml:
        try:
            import yaml  # noqa: PLC0415
        except ImportError:
            pass
        else:
            return yaml.safe_load(text)
    return read_simple_yaml(text)


def github_slug(heading):
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def anchors_of(path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return set()
    found = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE):
        found.add(github_slug(heading))
    return found


def check_rules(path, problems, exprs, use_pyyaml):
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path

    def fail(message):
        problems.append(f"{where}: {message}")

    try:
        document = load_yaml(path, use_pyyaml)
    except (OSError, ValueError) as error:
        fail(f"cannot read: {error}")
        return
    except Exception as error:  # PyYAML's errors
        fail(f"not valid YAML: {error}")
        return
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        fail("no `groups`")
        return
    names = set()
    fallback_runbook = REPO / "docs" / "runbook-alerts.md"
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            fail(f"group {group.get('name') if isinstance(group, dict) else group!r}: "
                 "no `rules`")
            continue
        for rule in group["rules"]:
            if not isinstance(rule, dict):
                fail("a rule that is not a mapping")
                continue
            if "record" in rule:
                if isinstance(rule.get("expr"), str):
                    exprs.append((f"{where} record {rule['record']}", rule["expr"], False))
                continue
            name = rule.get("alert")
            label = f"alert {name!r}"
            if not isinstance(name, str) or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
                fail(f"{label}: `alert` must be a CamelCase name")
            elif name in names:
                fail(f"{label}: defined twice")
            names.add(name)
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                fail(f"{label}: missing `expr`")
            else:
                for problem in lint_expr(expr, False, {}):
                    fail(f"{label}: {problem}: {expr}")
                exprs.append((f"{where} {label}", expr, False))
            duration = rule.get("for")
            if duration is None:
                fail(f"{label}: missing `for`")
            elif not re.fullmatch(r"(\d+(ms|[smhdwy]))+", str(duration)):
                fail(f"{label}: `for: {duration}` is not a duration")
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                fail(f"{label}: labels.severity {severity!r} is not one of "
                     f"{sorted(SEVERITIES)}")
            annotations = rule.get("annotations") or {}
            if not str(annotations.get("summary") or "").strip():
                fail(f"{label}: missing annotations.summary")
            runbook = annotations.get("runbook")
            if not isinstance(runbook, str) or "#" not in runbook:
                fail(f"{label}: annotations.runbook must be a link with an anchor "
                     "(docs/OPERATIONS.md#alert-…)")
                continue
            target, anchor = runbook.rsplit("#", 1)
            if isinstance(name, str) and anchor != f"alert-{name.lower()}":
                fail(f"{label}: runbook anchor #{anchor}, expected #alert-{name.lower()}")
            candidates = [fallback_runbook]
            if not re.match(r"^[a-z]+://", target):
                candidates.insert(0, REPO / target)
            if not any(anchor in anchors_of(candidate) for candidate in candidates):
                fail(f"{label}: anchor #{anchor} found in neither "
                     + " nor ".join(os.path.relpath(c, REPO) for c in candidates))


def run_promtool(path, problems):
    promtool = shutil.which("promtool")
    if promtool is None:
        return "promtool not installed: skipped"
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        problems.append(f"promtool check rules {path.name} failed:\n{output}")
        return "promtool check rules: FAILED"
    return "promtool check rules: SUCCESS"


# ---------------------------------------------------------------------------------------
# The exposition
# ---------------------------------------------------------------------------------------

def read_exposition(source):
    if source == "-":
        return sys.stdin.read()
    if re.match(r"^https?://", source):
        with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310
            return response.read().decode("utf-8")
    return Path(source).read_text(encoding="utf-8")


def exposed_names(text):
    """(sample names, {family name: type}) of a Prometheus text exposition."""
    samples, families = set(), {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = re.match(r"^#\s+(TYPE|HELP)\s+(" + IDENT + r")(?:\s+(\S+))?", line)
            if match:
                kind = match.group(3) if match.group(1) == "TYPE" else None
                if kind or match.group(2) not in families:
                    families[match.group(2)] = kind or families.get(match.group(2))
            continue
        match = re.match(r"^(" + IDENT + r")(?=[\s{])", line)
        if match:
            samples.add(match.group(1))
    return samples, families


def is_exposed(name, samples, families):
    """Whether a name used by an expression is in the exposition: as a sample or a
    family; a histogram base name also through its _bucket/_sum/_count samples; a
    _bucket/_sum/_count name also through its declared histogram (or summary) family."""
    if name in samples or name in families:
        return True
    if any(name + suffix in samples for suffix in HISTOGRAM_SUFFIXES):
        return True
    base = histogram_base(name)
    kind = families.get(base) if base else None
    if kind in ("histogram", "gaugehistogram"):
        return True
    return kind == "summary" and not name.endswith("_bucket")


# ---------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(
        description="Checks dashboards/*.json and dashboards/alerts.yml, and that every "
                    "metric they use is in a /metrics exposition.")
    parser.add_argument("--metrics", metavar="FILE",
                        help="Prometheus text exposition: a file, - (stdin) or an URL")
    parser.add_argument("--dashboards", metavar="DIR", default=str(REPO / "dashboards"),
                        help="directory of the dashboard JSON files (default: %(default)s)")
    parser.add_argument("--rules", metavar="FILE", action="append",
                        help="alert rules file (default: DIR/alerts.yml; repeatable)")
    parser.add_argument("--allow", metavar="NAME", action="append", default=[],
                        help="a metric name that need not be in the exposition (repeatable)")
    parser.add_argument("--no-promtool", action="store_true",
                        help="do not run `promtool check rules` even when installed")
    parser.add_argument("--no-yaml", action="store_true",
                        help="read the rules with the built-in reader, not PyYAML")
    parser.add_argument("--list", action="store_true",
                        help="print every metric name used, with its number of uses")
    args = parser.parse_args()

    dashboards_dir = Path(args.dashboards).resolve()
    rule_files = [Path(r).resolve() for r in args.rules] if args.rules \
        else [dashboards_dir / "alerts.yml"]
    problems, exprs, notes = [], [], []

    dashboard_files = sorted(dashboards_dir.glob("*.json"))
    if not dashboard_files:
        problems.append(f"no dashboards (*.json) in {dashboards_dir}")
    uids = {}
    for path in dashboard_files:
        dashboard = check_dashboard(path, problems, exprs)
        uid = dashboard.get("uid") if isinstance(dashboard, dict) else None
        if isinstance(uid, str):
            if uid in uids:
                problems.append(f"{path.name}: uid {uid!r} also used by {uids[uid]}")
            uids[uid] = path.name
    for path in rule_files:
        if not path.is_file():
            problems.append(f"rules file {path} not found")
            continue
        check_rules(path, problems, exprs, use_pyyaml=not args.no_yaml)
        if not args.no_promtool:
            notes.append(run_promtool(path, problems))

    used = {}  # metric name -> places
    for place, expr, _ in exprs:
        for name in metric_names(expr):
            used.setdefault(name, []).append(place)
            base = histogram_base(name)
            if base:
                used.setdefault(base, []).append(place)

    if args.list:
        for name in sorted(used):
            print(f"{name}  ({len(used[name])} uses)")

    if args.metrics:
        try:
            text = read_exposition(args.metrics)
        except (OSError, UnicodeDecodeError) as error:
            print(f"check-dashboards: cannot read --metrics {args.metrics}: {error}",
                  file=sys.stderr)
            return 2
        samples, families = exposed_names(text)
        if not samples and not families:
            problems.append(f"--metrics {args.metrics}: no metrics in it")
        allowed = PROMETHEUS_METRICS | set(args.allow)
        missing = sorted(name for name in used
                         if name not in allowed and not is_exposed(name, samples, families))
        for name in missing:
            places = used[name]
            more = f" and {len(places) - 3} more" if len(places) > 3 else ""
            problems.append(f"metric {name} is not in {args.metrics}; used by "
                            + "; ".join(places[:3]) + more)
    else:
        notes.append("no --metrics: metric names not checked")

    summary = (f"{len(dashboard_files)} dashboards, {len(rule_files)} rules file(s), "
               f"{len(exprs)} expressions, {len(used)} metric names")
    for note in notes:
        print(f"check-dashboards: {note}")
    if problems:
        print(f"check-dashboards: {len(problems)} problem(s) ({summary}):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"check-dashboards: OK ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
