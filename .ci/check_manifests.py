#!/usr/bin/env python3
"""Validates the Kubernetes manifests under the given directory.

Checks what a reviewer would: every document parses and names its apiVersion, kind and name;
kustomization resources exist; every container has an image, resource requests and limits,
readiness and liveness probes on a declared port, and a locked-down security context; every
Service selects a Deployment's pods and targets declared port names; every Ingress has TLS for
its hosts and routes to an existing Service's port; every OPENWARN_* variable
the manifests set is a setting the code defines (a typo would otherwise be silently ignored).
"""
import pathlib
import re
import sys

import yaml

errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


def known_settings(root):
    names = set()
    for path in list(root.glob("services/*/src/**/*.rs")) + list(root.glob("crates/*/src/**/*.rs")):
        names.update(re.findall(r'env = "(OPENWARN_[A-Z0-9_]+)"', path.read_text()))
    return names


def check_container(where, c, settings):
    if not c.get("image"):
        fail(where, "container has no image")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        if not res.get(part, {}).get("cpu") or not res.get(part, {}).get("memory"):
            fail(where, f"container lacks resources.{part} for cpu and memory")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        port = c.get(probe, {}).get("httpGet", {}).get("port")
        if port is None:
            fail(where, f"container has no {probe}")
        elif port not in ports and port not in ports.values():
            fail(where, f"{probe} uses undeclared port {port!r}")
    sc = c.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
        fail(where, "container must set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        fail(where, "container must drop ALL capabilities")
    for env in c.get("env", []):
        name = env.get("name", "")
        if name.startswith("OPENWARN_") and name not in settings:
            fail(where, f"{name} is not a setting of any service")
        if "value" not in env and "valueFrom" not in env:
            fail(where, f"env {name} has neither value nor valueFrom")
    return ports


def main(directory):
    root = pathlib.Path(__file__).resolve().parent.parent
    base = root / directory
    settings = known_settings(root)
    if not settings:
        fail("code", "found no OPENWARN_* settings in the code")
    docs = []
    for path in sorted(base.glob("*.yaml")):
        try:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc is not None:
                    docs.append((path.name, doc))
        except yaml.YAMLError as e:
            fail(path.name, f"does not parse: {e}")
    kustomization = next((d for f, d in docs if d.get("kind") == "Kustomization"), None)
    if kustomization is None:
        fail(directory, "no kustomization.yaml")
    else:
        for resource in kustomization.get("resources", []):
            if not (base / resource).exists():
                fail("kustomization.yaml", f"resource {resource} does not exist")
        listed = set(kustomization.get("resources", []))
        for path in base.glob("*.yaml"):
            if path.name != "kustomization.yaml" and path.name not in listed:
                fail("kustomization.yaml", f"{path.name} is not listed in resources")

    deployments = {}
    for where, doc in docs:
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name", "kustomization" if kind == "Kustomization" else None)
        if not doc.get("apiVersion") or not kind or not name:
            fail(where, "document lacks apiVersion, kind or metadata.name")
            continue
        where = f"{where} {kind}/{name}"
        if kind == "Deployment":
            spec = doc["spec"]
            labels = spec["template"]["metadata"]["labels"]
            selector = spec["selector"]["matchLabels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                fail(where, "selector does not match the pod labels")
            pod = spec["template"]["spec"]
            if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
                fail(where, "pod must run as non-root")
            volumes = {v["name"] for v in pod.get("volumes", [])}
            ports = {}
            for c in pod["containers"]:
                ports.update(check_container(where, c, settings))
                for m in c.get("volumeMounts", []):
                    if m["name"] not in volumes:
                        fail(where, f"mount of undeclared volume {m['name']}")
            deployments[name] = (labels, ports)

    for where, doc in docs:
        if doc.get("kind") != "Service":
            continue
        name = doc["metadata"]["name"]
        where = f"{where} Service/{name}"
        selector = doc["spec"].get("selector", {})
        matches = [
            ports for labels, ports in deployments.values()
            if selector and all(labels.get(k) == v for k, v in selector.items())
        ]
        if not matches:
            fail(where, "selects no Deployment's pods")
            continue
        for port in doc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if target not in matches[0] and target not in matches[0].values():
                fail(where, f"targetPort {target!r} is not a container port")

    services = {
        doc["metadata"]["name"]: doc["spec"]["ports"]
        for _, doc in docs
        if doc.get("kind") == "Service"
    }
    for where, doc in docs:
        if doc.get("kind") != "Ingress":
            continue
        where = f"{where} Ingress/{doc['metadata']['name']}"
        tls_hosts = {h for t in doc["spec"].get("tls", []) for h in t.get("hosts", [])}
        for rule in doc["spec"].get("rules", []):
            if rule.get("host") not in tls_hosts:
                fail(where, f"host {rule.get('host')!r} has no TLS (officers and phones use HTTPS only)")
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {})
                ports = services.get(backend.get("name"))
                if ports is None:
                    fail(where, f"backend service {backend.get('name')!r} does not exist")
                    continue
                port = backend.get("port", {})
                if not any(port.get("name") == p.get("name") or port.get("number") == p["port"] for p in ports):
                    fail(where, f"backend port {port} is not a port of Service/{backend['name']}")

    # cert-manager's internal certificates: each names exactly its service (the caller identity
    # the gRPC ports check), and every internal-TLS secret a workload mounts has one.
    certificates = {}
    for path in sorted((base / "cert-manager").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Certificate":
                spec = doc.get("spec", {})
                service = spec.get("secretName", "").removesuffix("-internal-tls")
                if spec.get("dnsNames") != [service]:
                    fail(f"cert-manager/{path.name} Certificate/{doc['metadata']['name']}",
                         f"dnsNames must be exactly [{service!r}]: the service's identity")
                certificates[spec.get("secretName")] = doc
    mounted = {
        v.get("secret", {}).get("secretName")
        for _, d in docs
        for v in d.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
        + d.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
    }
    for secret in sorted(s for s in mounted if s and s.endswith("-internal-tls")):
        if secret not in certificates:
            fail("cert-manager", f"no Certificate issues {secret}")

    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} manifest problem(s)", file=sys.stderr)
        return 1
    print(f"{len(docs)} manifest documents valid ({len(deployments)} deployments, {len(settings)} known settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "k8s"))
