"""The metrics the code exports, read from the sources: every `metrics::counter!`, `gauge!` and
`histogram!` call naming an `openwarn_*` (or `process_*`) metric, with its kind and label names;
and the catalogue that describes them (crates/bootstrap/src/catalogue.rs: `# HELP` texts). The single source
of truth for the checks of the alert rules and the dashboard (.ci/check_observability.py)."""
import pathlib
import re

CALL = re.compile(r"metrics::(counter|gauge|histogram)!\(")
NAME = re.compile(r'\s*"((?:openwarn|process)_[a-z0-9_]+)"')
# An entry of crates/bootstrap/src/catalogue.rs: `counter(\n "name",\n "help",` (or gauge/histogram).
ENTRY = re.compile(r'\b(counter|gauge|histogram)\(\s*"([a-z_:][a-z0-9_:]*)",\s*"((?:[^"\\]|\\.)*)"')
LABEL = re.compile(r'"([a-z_]+)"\s*=>')
TESTS = re.compile(r"#\[cfg\(test\)\]\s*mod \w+\s*\{")


def balanced(text, start, open_, close):
    """The index just past the `close` matching the `open_` before `start`."""
    depth = 1
    i = start
    while depth and i < len(text):
        depth += {open_: 1, close: -1}.get(text[i], 0)
        i += 1
    return i


def without_tests(text):
    """The source without its `#[cfg(test)] mod … { … }` modules (they export nothing)."""
    while (m := TESTS.search(text)) is not None:
        text = text[: m.start()] + text[balanced(text, m.end(), "{", "}") :]
    return text


def exported(root):
    """{metric: (kind, {label, ...})} over every service's and crate's non-test sources."""
    metrics = {}
    paths = list(root.glob("services/*/src/**/*.rs")) + list(root.glob("crates/*/src/**/*.rs"))
    for path in sorted(paths):
        text = without_tests(path.read_text())
        for call in CALL.finditer(text):
            kind = call.group(1)
            args = text[call.end() : balanced(text, call.end(), "(", ")") - 1]
            named = NAME.match(args)
            if named is None:
                continue  # not one of ours, or a name built at run time (none are)
            name, labels = named.group(1), " ".join(LABEL.findall(args))
            old_kind, old_labels = metrics.get(name, (kind, set()))
            if old_kind != kind:
                raise ValueError(f"{name} is a {old_kind} and a {kind}")
            metrics[name] = (kind, old_labels | set(labels.split()))
    return metrics


def catalogue(root):
    """{metric: (kind, help)} as crates/bootstrap/src/catalogue.rs lists them."""
    text = without_tests((root / "crates/bootstrap/src/catalogue.rs").read_text())
    text = text[text.index("pub const METRICS"):]
    return {name: (kind, help_) for kind, name, help_ in ENTRY.findall(text)}


def undescribed(exported_, catalogue_):
    """Problems: a metric exported but not in the catalogue (no `# HELP`), of another kind there,
    or listed there but exported by nobody."""
    errors = []
    for name, (kind, _) in sorted(exported_.items()):
        if name not in catalogue_:
            errors.append(f"{name}: exported but not in crates/bootstrap/src/catalogue.rs (no # HELP)")
        elif catalogue_[name][0] != kind:
            errors.append(f"{name}: a {kind} in the code, a {catalogue_[name][0]} in the catalogue")
        elif not catalogue_[name][1].strip():
            errors.append(f"{name}: empty help text")
    for name in sorted(set(catalogue_) - set(exported_)):
        errors.append(f"{name}: in the catalogue but exported by nothing")
    return errors


def series(metrics):
    """{series name: labels} as Prometheus exposes them (histograms as _bucket/_sum/_count)."""
    out = {}
    for name, (kind, labels) in metrics.items():
        if kind == "histogram":
            out[name + "_bucket"] = labels | {"le"}
            out[name + "_sum"] = set(labels)
            out[name + "_count"] = set(labels)
        else:
            out[name] = set(labels)
    return out
