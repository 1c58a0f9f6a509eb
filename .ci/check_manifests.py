#!/usr/bin/env python3
"""Validates the Kubernetes manifests under the given directory.

Checks what a reviewer would: every document parses and names its apiVersion, kind and name;
kustomization resources exist; every container has an image, resource requests and limits,
readiness and liveness probes on a declared port, and a locked-down security context; every
workload is a Deployment whose pods Prometheus scrapes on their `admin` port (annotations, and a
NetworkPolicy admitting the monitoring namespace there) — no Jobs, whose metrics vanish; every
Service selects a Deployment's pods and targets declared port names; every Ingress has TLS for
its hosts (or is a TLS passthrough) and routes to an existing Service's port; every OPENWARN_*
variable the manifests set is a setting the code defines (a typo would otherwise be silently
ignored).

NetworkPolicies: a default deny for ingress and egress of every pod; every peer outside the
namespace is monitoring (admin ports), an ingress controller namespace (public HTTP ports) or
kube-system (DNS); an ipBlock never covers a private range (pod addresses) without excepting it.
The pod-to-pod edges the policies allow (source -> destination:port, allowed only if the
destination's ingress AND the source's egress allow it) must equal the edges the code needs: the
gRPC callers in crates/protocol/src/callers.rs and the proxy's HTTPS calls to verification and
submission. A missing edge breaks a call; an extra one widens what a compromised pod can reach.

Schemas: every document of a Kubernetes kind is validated strictly (unknown fields refused) with
kubernetes-validate, offline (it bundles the schemas); skipped if not installed, except under
CI=true. cert-manager and kustomize kinds have no schema there and are skipped.
"""
import ipaddress
import os
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
            # Every workload is scraped on its admin port (the alerts rest on it).
            annotations = spec["template"]["metadata"].get("annotations", {})
            if "admin" not in ports:
                fail(where, "no container port named admin (/metrics)")
            elif annotations.get("prometheus.io/scrape") != "true" or str(ports["admin"]) != annotations.get(
                "prometheus.io/port"
            ):
                fail(where, f"pods must carry prometheus.io/scrape: \"true\" and prometheus.io/port: \"{ports['admin']}\"")
        elif kind in ("CronJob", "Job"):
            fail(where, "a Job's metrics cannot be scraped (and distribution's last run is what to alert "
                        "on): run it as a Deployment with its own schedule (docs/OPERATIONS.md)")

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
        # TLS passthrough (the labs' mutual TLS ends in the pod): the ingress holds no
        # certificate, so spec.tls would be wrong; the annotation stands for it, and then the
        # backend must be a port that serves TLS itself, never a plain-HTTP one (portal, proxy).
        annotations = doc["metadata"].get("annotations", {})
        passthrough = annotations.get("nginx.ingress.kubernetes.io/ssl-passthrough") == "true"
        if passthrough and tls_hosts:
            fail(where, "TLS passthrough and spec.tls exclude each other (the pod ends TLS)")
        for rule in doc["spec"].get("rules", []):
            if passthrough:
                for path in rule.get("http", {}).get("paths", []):
                    name = path.get("backend", {}).get("service", {}).get("name")
                    if name not in TLS_IN_POD:
                        fail(where, f"TLS passthrough to {name!r}, whose public port does not end TLS itself")
            elif rule.get("host") not in tls_hosts:
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

    check_network_policies(root, docs)
    validated = check_schemas(base, docs)

    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} manifest problem(s)", file=sys.stderr)
        return 1
    print(f"{len(docs)} manifest documents valid ({len(deployments)} deployments, {len(settings)} known settings, "
          f"{len(EDGES_SEEN)} pod-to-pod edges as the code needs, {validated})")
    return 0


# The gRPC port of each service that serves gRPC (callers.rs names services, not ports).
GRPC_PORTS = {"verification": 9010, "submission": 9020, "test-result": 9030}
# gRPC service name in callers.rs paths -> the Kubernetes service serving it.
GRPC_SERVICES = {"VerificationService": "verification", "SubmissionService": "submission",
                 "TestResultService": "test-result"}
# Calls that are not gRPC: the proxy forwards phones to the HTTPS app APIs.
HTTP_EDGES = {("proxy", "verification", 8010), ("proxy", "submission", 8020)}
# Services whose public port ends TLS itself (mutual TLS with the labs): the only passthrough target.
TLS_IN_POD = {"test-result"}
# Namespaces outside ours a policy may name, and for what.
INGRESS_NAMESPACES = {"ingress-apps", "ingress-labs"}
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
EDGES_SEEN = set()


def needed_edges(root):
    """(caller, service, port) for every gRPC pair in CALLERS, plus the proxy's HTTP calls."""
    text = (root / "crates/protocol/src/callers.rs").read_text()
    table = re.search(r"pub const CALLERS[^=]*=\s*&\[(.*?)\n\];", text, re.S)
    if not table:
        fail("callers.rs", "found no CALLERS table")
        return set()
    edges = set(HTTP_EDGES)
    pairs = re.findall(r'\(\s*"/[\w.]+\.(\w+)/(\w+)",\s*&\[([^\]]*)\],?\s*\)', table.group(1))
    if len(pairs) != table.group(1).count('"/'):
        fail("callers.rs", "could not parse every CALLERS entry")
    for grpc_service, method, callers in pairs:
        service = GRPC_SERVICES.get(grpc_service)
        if service is None:
            fail("callers.rs", f"{grpc_service}/{method}: unknown gRPC service (add it to GRPC_SERVICES)")
            continue
        for caller in re.findall(r'"([^"]+)"', callers):
            edges.add((caller, service, GRPC_PORTS[service]))
    return edges


def selects(selector, labels):
    if selector.get("matchExpressions"):
        raise ValueError("matchExpressions are not supported by this check")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def peer_matches(peer, labels, namespace_labels):
    """Whether a policy peer admits a pod with `labels` in our namespace."""
    if "ipBlock" in peer:
        return False  # external addresses; that they never cover pods is checked separately
    if "namespaceSelector" in peer and not selects(peer["namespaceSelector"], namespace_labels):
        return False
    return selects(peer.get("podSelector", {}), labels)


def port_matches(rule_ports, port, name):
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        want = p.get("port")
        if want is None or want == name or want == port or (
            isinstance(want, int) and p.get("endPort") and want <= port <= p["endPort"]
        ):
            return True
    return False


def allowed(policies, direction, pod, other, port, name, namespace_labels):
    """Whether `pod`'s policies allow traffic with `other` (direction Ingress: from it; Egress:
    to it) on the destination's port. Not isolated in that direction: everything is allowed."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [p for p in policies if selects(p["spec"].get("podSelector", {}), pod)]
    isolating = [p for p in selecting if direction in policy_types(p)]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(peer_matches(q, other, namespace_labels) for q in peers)) and port_matches(
                rule.get("ports"), port, name
            ):
                return True
    return False


def policy_types(policy):
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in spec else []))


def check_network_policies(root, docs):
    namespace_docs = [d for _, d in docs if d.get("kind") == "Namespace"]
    namespace_labels = dict(namespace_docs[0]["metadata"].get("labels", {})) if namespace_docs else {}
    namespace_labels["kubernetes.io/metadata.name"] = (
        namespace_docs[0]["metadata"]["name"] if namespace_docs else "openwarn"
    )
    policies = [d for _, d in docs if d.get("kind") == "NetworkPolicy"]
    # Every workload's pods: labels and TCP container ports (name -> number).
    pods = {}
    for _, d in docs:
        template = None
        if d.get("kind") == "Deployment":
            template = d["spec"]["template"]
        elif d.get("kind") == "CronJob":
            template = d["spec"]["jobTemplate"]["spec"]["template"]
        if template is None:
            continue
        labels = template.get("metadata", {}).get("labels", {})
        service = labels.get("app.kubernetes.io/name")
        if not service:
            fail(f"{d['kind']}/{d['metadata']['name']}", "pods lack app.kubernetes.io/name (policies select by it)")
            continue
        ports = {}
        for c in template["spec"]["containers"]:
            for p in c.get("ports", []):
                if p.get("protocol", "TCP") == "TCP":
                    ports[p["containerPort"]] = p.get("name")
        pods[service] = (labels, ports)

    if not any(
        p["spec"].get("podSelector") in ({}, None) and set(policy_types(p)) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
        for p in policies
    ):
        fail("NetworkPolicy", "no default deny (podSelector {}, policyTypes [Ingress, Egress], no rules)")

    # Peers outside the namespace: what each may be for.
    for policy in policies:
        where = f"NetworkPolicy/{policy['metadata']['name']}"
        spec = policy["spec"]
        for direction, key, peers_key in (("Ingress", "ingress", "from"), ("Egress", "egress", "to")):
            for rule in spec.get(key) or []:
                if not rule.get(peers_key):
                    fail(where, f"an {key} rule without peers admits everyone")
                ports = {p.get("port") for p in rule.get("ports") or []}
                for peer in rule.get(peers_key) or []:
                    if "ipBlock" in peer:
                        block = peer["ipBlock"]
                        net = ipaddress.ip_network(block["cidr"])
                        excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                        for private in PRIVATE:
                            if net.version == 4 and private.subnet_of(net) and not any(
                                private.subnet_of(e) for e in excepted
                            ):
                                fail(where, f"ipBlock {net} covers {private} (pod addresses) without excepting it")
                        continue
                    ns = peer.get("namespaceSelector")
                    if ns is None:
                        continue
                    name = (ns.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                    if direction == "Egress" and name == "kube-system":
                        if ports - {53}:
                            fail(where, "egress to kube-system other than DNS (53)")
                    elif direction == "Ingress" and name == "monitoring":
                        for pod in pods.values():
                            if selects(spec.get("podSelector", {}), pod[0]):
                                for port in ports:
                                    if (pod[1].get(port) if isinstance(port, int) else port) != "admin":
                                        fail(where, f"monitoring may scrape only the admin port, not {port}")
                    elif direction == "Ingress" and name in INGRESS_NAMESPACES:
                        for pod in pods.values():
                            if selects(spec.get("podSelector", {}), pod[0]):
                                for port in ports:
                                    if (pod[1].get(port) if isinstance(port, int) else port) != "http":
                                        fail(where, f"the ingress controller may reach only the http port, not {port}")
                    else:
                        fail(where, f"{key} peer in namespace {name or ns!r}: not monitoring, an ingress "
                                    "controller or DNS")

    # The pod-to-pod edges: both ends must allow them.
    try:
        policy_edges = set()
        for src, (src_labels, _) in pods.items():
            for dst, (dst_labels, dst_ports) in pods.items():
                for port, name in dst_ports.items():
                    if allowed(policies, "Ingress", dst_labels, src_labels, port, name, namespace_labels) and allowed(
                        policies, "Egress", src_labels, dst_labels, port, name, namespace_labels
                    ):
                        policy_edges.add((src, dst, port))
    except ValueError as e:
        fail("NetworkPolicy", str(e))
        return
    # Prometheus (namespace monitoring) reaches every workload's admin port.
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    for service, (labels, ports) in pods.items():
        for port, name in ports.items():
            if name == "admin" and not allowed(policies, "Ingress", labels, {}, port, name, monitoring):
                fail("NetworkPolicy", f"monitoring cannot scrape {service}'s admin port {port}")
    needed = needed_edges(root)
    for service, port in GRPC_PORTS.items():
        ports = pods.get(service, (None, {}))[1]
        if ports.get(port) != "grpc":
            fail(service, f"gRPC port {port} (GRPC_PORTS) is not its container port named grpc")
    for src, dst, port in sorted(needed - policy_edges):
        fail("NetworkPolicy", f"{src} -> {dst}:{port} is needed by the code but not allowed by the policies")
    for src, dst, port in sorted(policy_edges - needed):
        fail("NetworkPolicy", f"{src} -> {dst}:{port} is allowed by the policies but not needed by the code")
    EDGES_SEEN.update(policy_edges & needed)


def check_schemas(base, docs):
    """Strict schema validation of every Kubernetes kind, offline."""
    try:
        import kubernetes_validate
    except ImportError:
        if os.environ.get("CI") == "true":
            fail("schemas", "kubernetes-validate is not installed (required under CI=true)")
        return "schemas NOT validated: pip install kubernetes-validate"
    version = kubernetes_validate.latest_version()
    documents = list(docs)
    for path in sorted((base / "cert-manager").glob("*.yaml")):
        documents += [(f"cert-manager/{path.name}", d) for d in yaml.safe_load_all(path.read_text()) if d]
    count = 0
    for where, doc in documents:
        group = doc.get("apiVersion", "").split("/")[0]
        if group in ("cert-manager.io", "kustomize.config.k8s.io", "acme.cert-manager.io"):
            continue  # CRDs / kustomize: no schema bundled
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            count += 1
        except kubernetes_validate.ValidationError as e:
            fail(f"{where} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}",
                 f"schema: {str(e).splitlines()[0]} (at {'/'.join(map(str, e.path))})")
        except kubernetes_validate.SchemaNotFoundError:
            fail(f"{where} {doc.get('kind')}", f"no schema for {doc.get('apiVersion')} {doc.get('kind')}")
    return f"{count} documents schema-valid for Kubernetes {version}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "k8s"))
