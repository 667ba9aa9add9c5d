"""Static checks of the Helm chart: lint, render for 1.29 and 1.33, validate, and inspect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.tools import (
    BIN,
    CHART,
    KUBERNETES_VERSIONS,
    by_kind,
    helm,
    helm_template,
    one,
    render,
    run,
)

# Everything optional switched on, so every template renders.
FULL = {
    "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}},
    "sidecar": {
        "source": "age",
        "age": {"vaultConfigMap": "patina-vault", "identitySecret": "patina-age"},
    },
    "tls": {"clientCASecret": "clients-ca"},
    "knowledge": {"roots": ["/project"]},
    "extraVolumes": [{"name": "project", "persistentVolumeClaim": {"claimName": "src"}}],
    "extraVolumeMounts": [{"name": "project", "mountPath": "/project", "readOnly": True}],
}
VARIANTS = {"defaults": {}, "full": FULL}


def pod_spec(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    every = spec["containers"] + spec.get("initContainers", [])
    return next(c for c in every if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c["env"]}


def test_helm_lint_is_clean() -> None:
    run([helm(), "lint", "--strict", CHART])
    with_full = run(
        [helm(), "lint", "--strict", CHART, "--set-json", f"metrics={json.dumps(FULL['metrics'])}"]
    )
    assert "0 chart(s) failed" in with_full.stdout


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_pass_strict_kubernetes_validation(
    tmp_path: Path, kube_version: str, variant: str
) -> None:
    manifests = render(VARIANTS[variant], kube_version=kube_version)
    # ServiceMonitor is a CRD that kubernetes-validate has no schema for; it is checked below.
    builtin = [m for m in manifests if m["kind"] != "ServiceMonitor"]
    out = tmp_path / "manifests.yaml"
    out.write_text(yaml.safe_dump_all(builtin))
    major_minor = kube_version.rsplit(".", 1)[0]
    proc = run([BIN / "kubernetes-validate", "--strict", "-k", kube_version, out])
    passed = proc.stdout.count(f"against version {major_minor}")
    assert passed == len(builtin), proc.stdout


def test_chart_refuses_kubernetes_without_native_sidecars() -> None:
    proc = helm_template(kube_version="1.28.0", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "incompatible" in proc.stderr


def test_sidecar_is_a_native_sidecar_sharing_a_memory_volume() -> None:
    spec = pod_spec(render())
    sidecar = container(spec, "sidecar")
    assert sidecar in spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["args"][0] == "sidecar"
    admin_socket = sidecar["args"][sidecar["args"].index("--admin-socket") + 1]
    service = container(spec, "patina")
    assert env_of(service)["PATINA_ADMIN_SOCKET_PATH"] == admin_socket
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert admin_socket.startswith(mounts["admin"] + "/")
    assert {m["name"] for m in service["volumeMounts"]} >= {"admin", "run"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name in ("admin", "run", "tmp"):
        assert volumes[name]["emptyDir"]["medium"] == "Memory"
    # The sidecar never sees the public socket directory.
    assert "run" not in mounts
    # Ready once the service holds the source's set: the same arguments as its command.
    probe = sidecar["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["patina-healthcheck", "sidecar"]
    assert probe[2:] == sidecar["args"][1:]
    assert "startupProbe" not in sidecar, "a startup probe would hold the service back"


def test_default_sidecar_source_is_a_mounted_secret_directory() -> None:
    manifests = render({"sidecar": {"dir": {"secrets": {"API_KEY": "tripwire-value"}}}})
    sidecar = container(pod_spec(manifests), "sidecar")
    assert sidecar["args"][1:3] == ["--source", "dir:/var/run/patina-source"]
    source = next(v for v in pod_spec(manifests)["volumes"] if v["name"] == "source")
    created = {s["metadata"]["name"]: s for s in by_kind(manifests, "Secret")}
    assert source["secret"]["secretName"] in created
    assert "API_KEY" in created[source["secret"]["secretName"]]["data"]
    # Values go to the Secret only, base64-encoded, never into the pod spec.
    assert "tripwire-value" not in json.dumps(one(manifests, "Deployment"))


def test_existing_secret_directory_is_used_as_is() -> None:
    manifests = render({"sidecar": {"dir": {"secretName": "team-secrets"}}})
    source = next(v for v in pod_spec(manifests)["volumes"] if v["name"] == "source")
    assert source["secret"]["secretName"] == "team-secrets"
    assert "rel-patina-serve-sidecar-source" not in {
        s["metadata"]["name"] for s in by_kind(manifests, "Secret")
    }


def test_age_source_reads_the_vault_and_identity_from_existing_objects() -> None:
    spec = pod_spec(render(FULL))
    args = container(spec, "sidecar")["args"]
    assert args[1:5] == [
        "--source",
        "age:/var/run/patina-source/secrets.age",
        "--identity",
        "/run/secrets/patina-age/identity",
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["source"]["configMap"]["name"] == "patina-vault"
    assert volumes["age-identity"]["secret"]["secretName"] == "patina-age"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_container_is_hardened(variant: str) -> None:
    manifests = render(VARIANTS[variant])
    pods = [pod_spec(manifests), one(manifests, "Pod")["spec"]]
    for spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            assert sc["privileged"] is False, c["name"]


def test_service_probes_cover_startup_liveness_and_readiness() -> None:
    service = container(pod_spec(render()), "patina")
    assert service["startupProbe"]["exec"]["command"] == ["patina-healthcheck"]
    assert service["livenessProbe"]["exec"]["command"] == ["patina-healthcheck"]
    readiness = service["readinessProbe"]["httpGet"]
    assert readiness == {"path": "/health", "port": "https", "scheme": "HTTPS"}
    # A slow first start (model load) is the startup probe's business, not liveness'.
    startup = service["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_tls_and_token_come_from_mounted_secrets_not_environment() -> None:
    manifests = render({"auth": {"token": "pt_tripwire_token_value_1234"}})
    service = container(pod_spec(manifests), "patina")
    env = env_of(service)
    assert env["PATINA_TLS_CERT"] == "/etc/patina/tls/tls.crt"
    assert env["PATINA_TLS_KEY"] == "/etc/patina/tls/tls.key"
    assert "PATINA_SERVE_TOKEN" not in env
    assert "pt_tripwire_token_value_1234" not in json.dumps(one(manifests, "Deployment"))
    token_volume = next(v for v in pod_spec(manifests)["volumes"] if v["name"] == "token")
    assert token_volume["secret"]["items"] == [{"key": "token", "path": "patina_serve_token"}]
    mount = next(m for m in service["volumeMounts"] if m["name"] == "token")
    assert mount["mountPath"] == env["PATINA_SECRETS_DIR"]


def test_generated_tls_certificate_names_the_service() -> None:
    from cryptography import x509

    manifests = render()
    tls = next(s for s in by_kind(manifests, "Secret") if s["type"] == "kubernetes.io/tls")
    import base64

    cert = x509.load_pem_x509_certificate(base64.b64decode(tls["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert "rel-patina-serve.agents.svc" in dns
    assert "ca.crt" in tls["data"]


def test_existing_tls_and_token_secrets_are_referenced_not_created() -> None:
    manifests = render({"tls": {"existingSecret": "my-tls"}, "auth": {"existingSecret": "my-tok"}})
    names = {s["metadata"]["name"] for s in by_kind(manifests, "Secret")}
    assert names == {"rel-patina-serve-sidecar-source"}
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "my-tls"
    assert volumes["token"]["secret"]["secretName"] == "my-tok"


def test_service_exposes_only_the_tls_port_and_metrics_is_separate() -> None:
    manifests = render(FULL)
    services = {s["metadata"]["name"]: s for s in by_kind(manifests, "Service")}
    main = services["rel-patina-serve"]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in main] == [("https", 50051)]
    metrics = services["rel-patina-serve-metrics"]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in metrics] == [("metrics", 9090)]
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= services["rel-patina-serve-metrics"]["metadata"]["labels"].items()
    assert env_of(container(pod_spec(manifests), "patina"))["PATINA_METRICS_LISTEN"].endswith(
        ":9090"
    )


def test_metrics_are_off_by_default() -> None:
    manifests = render()
    assert not by_kind(manifests, "ServiceMonitor")
    assert len(by_kind(manifests, "Service")) == 1
    assert "PATINA_METRICS_LISTEN" not in env_of(container(pod_spec(manifests), "patina"))


def test_network_policy_admits_labelled_clients_and_the_test_pod() -> None:
    manifests = render()
    policy = one(manifests, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "https", "protocol": "TCP"}]
    (peer,) = rule["from"]
    label = peer["podSelector"]["matchLabels"]
    assert label == {"rel-patina-serve-client": "true"}
    assert label.items() <= one(manifests, "Pod")["metadata"]["labels"].items()
    egress_ports = {p["port"] for e in policy["egress"] for p in e["ports"]}
    assert egress_ports == {53}


def test_disruption_budget_lets_a_single_replica_drain() -> None:
    pdb = one(render(), "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1


def test_helm_test_pod_checks_health_over_tls_with_the_release_ca() -> None:
    pod = one(render(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert c["args"][:2] == ["health", "--url"]
    assert c["args"][2] == "https://rel-patina-serve.agents.svc:50051"
    assert c["args"][3:] == ["--ca", "/etc/patina/tls/ca.crt"]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "drop"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"sidecar": {"source": "vault"}}, "source"),
        ({"sidecar": {"dir": {"secrets": {"bad-name!": "x"}}}}, "bad-name!"),
        ({"service": {"port": 70000}}, "port"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"knowledge": {"roots": ["relative/path"]}}, "roots"),
        ({"auth": {"token": "short"}}, "token"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"unknownKey": True}, "unknownKey"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], complaint: str) -> None:
    proc = helm_template(values=values, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr
    assert complaint in proc.stderr


def test_age_source_without_a_vault_fails_with_a_clear_message() -> None:
    values = {"sidecar": {"source": "age", "age": {"identitySecret": "patina-age"}}}
    proc = helm_template(values=values, check=False)
    assert proc.returncode != 0
    assert "sidecar.age.vaultSecret" in proc.stderr
