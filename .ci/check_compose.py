#!/usr/bin/env python3
"""Validates deploy/compose.yaml.

With Docker's compose plugin installed, `docker compose config` parses it as Compose itself does.
Always: the file against the Compose Specification's JSON schema (.ci/compose-spec.json, copied
from github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0), and our own
rules: every OPENWARN_* variable is a setting the code defines; every bind-mounted file or
directory exists (except what the `init` service generates under deploy/compose/secrets); every
`depends_on` names a service; each OpenWarn service is built from deploy/Dockerfile with its
SERVICE, has its internal mutual-TLS files, exports spans to the collector, and Prometheus
scrapes its admin port. Under CI=true a missing jsonschema is a failure.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

SERVICES = {"proxy": 8001, "verification": 8011, "submission": 8021, "test-result": 8031,
            "portal": 8041, "distribution": 8051}
GENERATED = "compose/secrets"


def known_settings(root):
    names = set()
    for path in list(root.glob("services/*/src/**/*.rs")) + list(root.glob("crates/*/src/**/*.rs")):
        names.update(re.findall(r'env = "(OPENWARN_[A-Z0-9_]+)"', path.read_text()))
    return names


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    deploy = root / "deploy"
    path = deploy / "compose.yaml"
    errors = []
    how = []

    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run(["docker", "compose", "-f", str(path), "config", "--quiet"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            errors.append(f"docker compose config: {result.stderr.strip()}")
        how.append("docker compose config")

    doc = yaml.safe_load(path.read_text())
    try:
        import json

        import jsonschema

        schema = json.loads((root / ".ci/compose-spec.json").read_text())
        validator = jsonschema.Draft7Validator(schema)
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            errors.append(f"schema: {'/'.join(map(str, e.path))}: {e.message}")
        how.append("the compose-spec schema")
    except ImportError:
        if os.environ.get("CI") == "true":
            errors.append("jsonschema is not installed (required under CI=true)")
        else:
            print("compose: schema NOT checked (pip install jsonschema)", file=sys.stderr)

    settings = known_settings(root)
    services = doc.get("services", {})
    prometheus = (deploy / "prometheus/prometheus.yml").read_text()
    for name, service in services.items():
        where = f"compose.yaml services.{name}"
        env = service.get("environment", {})
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for var in env:
            if var.startswith("OPENWARN_") and var not in settings:
                errors.append(f"{where}: {var} is not a setting of any service")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                relative = os.path.normpath(source)
                if not relative.startswith(GENERATED) and not (deploy / relative).exists():
                    errors.append(f"{where}: bind mount {source} does not exist")
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            if other not in services:
                errors.append(f"{where}: depends_on {other}, which is not a service")
        if name in SERVICES:
            build = service.get("build", {})
            if build.get("dockerfile") != "deploy/Dockerfile" or build.get("args", {}).get("SERVICE") != name:
                errors.append(f"{where}: must build deploy/Dockerfile with SERVICE={name}")
            for var in ("OPENWARN_TLS_CA", "OPENWARN_TLS_CERT", "OPENWARN_TLS_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
                if not env.get(var):
                    errors.append(f"{where}: {var} is not set (mutual TLS, spans)")
            if env.get("OPENWARN_ADMIN_ADDR") != f"0.0.0.0:{SERVICES[name]}":
                errors.append(f"{where}: OPENWARN_ADMIN_ADDR must be 0.0.0.0:{SERVICES[name]}")
            if f'"{name}:{SERVICES[name]}"' not in prometheus:
                errors.append(f"prometheus.yml: does not scrape {name}:{SERVICES[name]}")
    for name in SERVICES:
        if name not in services:
            errors.append(f"compose.yaml: no service {name}")

    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} compose problem(s)", file=sys.stderr)
        return 1
    if not how:
        print("compose: neither docker compose nor jsonschema available: structure checks only", file=sys.stderr)
    print(f"deploy/compose.yaml valid ({len(services)} services; checked with {' and '.join(how) or 'our rules only'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
