"""The shipped deployment files, checked offline: Kubernetes manifests against the Kubernetes 1.37 schemas
(kubernetes-validate), the rendered kustomize overlay, and that the Dockerfile, compose.yaml, the manifests
and the local cluster of deploy/local run the same commands with the same settings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlgate.settings import Settings
from tests.fakes import sum_model

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.37"
SERVE_ARGS = ["serve", "--host", "0.0.0.0", "--port", "8000"]
MIGRATE_ARGS = ["db", "upgrade"]
SETTING_NAMES = {f"MLGATE_{name.upper()}" for name in Settings.model_fields}


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _patch_files() -> set[Path]:
    """Files that kustomize patches are read from: partial resources, not validated on their own."""
    patches = set()
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        for patch in yaml.safe_load(kustomization.read_text()).get("patches", []):
            if "path" in patch:
                patches.add((kustomization.parent / patch["path"]).resolve())
    return patches


def _manifest_files() -> list[Path]:
    skipped = _patch_files()
    return sorted(p for p in KUBERNETES.rglob("*.yaml")
                  if p.name != "kustomization.yaml" and p.resolve() not in skipped)


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_every_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in _documents(path):
        _validate(doc)


def test_every_kustomization_names_files_that_exist() -> None:
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for entry in [*spec.get("resources", []), *spec.get("components", [])]:
            assert (kustomization.parent / entry).exists(), (kustomization, entry)
        for patch in spec.get("patches", []):
            assert "patch" in patch or (kustomization.parent / patch["path"]).is_file(), (kustomization, patch)


def _pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in ("Deployment", "Job")}


def _rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("MLGATE_REQUIRE_SERVICES") == "1":
            pytest.fail("kubectl (its built-in kustomize renders the overlay) is not installed")
        pytest.skip("kubectl is not installed")
    overlay = KUBERNETES / "overlays" / "example"  # the base and the worker component
    done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_rendered_overlay_is_valid_and_locked_down() -> None:
    docs = _rendered()
    for doc in docs:
        _validate(doc)
    kinds = {f"{d['kind']}/{d['metadata']['name']}" for d in docs}
    assert {"Deployment/mlgate", "Service/mlgate", "PodDisruptionBudget/mlgate", "HorizontalPodAutoscaler/mlgate",
            "ConfigMap/mlgate-config", "Secret/mlgate-secrets", "Job/mlgate-migrate-0-1-0"} <= kinds, kinds
    assert "Deployment/mlgate-worker" in kinds
    assert all(d["metadata"].get("namespace", "mlgate") == "mlgate" for d in docs)
    for name, pod in _pod_specs(docs).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod.get("automountServiceAccountToken", False) is False or name.startswith("Job"), name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"], name
            assert container["image"] == "registry.example.com/mlgate:0.1.0", name
    server = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlgate")
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == SERVE_ARGS
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # The grace period covers the drain and the requests in flight (deploy/mlgate.env).
    shared = _env_file(DEPLOY / "mlgate.env")
    assert server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > (
        float(shared["MLGATE_DRAIN_S"]) + float(shared["MLGATE_SHUTDOWN_TIMEOUT_S"]))
    # The readiness probe sees a stop before the drain ends.
    probe = container["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] < float(shared["MLGATE_DRAIN_S"])
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == MIGRATE_ARGS
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "Pods"}
    assert hpa["spec"]["metrics"][1]["pods"]["metric"]["name"] == "mlgate_queue_depth"


def test_every_setting_named_in_the_deployment_files_exists() -> None:
    """A misspelt MLGATE_ variable is ignored by mlgate: none may hide in the shipped files."""
    texts = [DEPLOY / "mlgate.env", ROOT / "compose.yaml", ROOT / "Dockerfile", DEPLOY / "compose.env.example",
             *KUBERNETES.rglob("*.yaml"), *KUBERNETES.rglob("*.env")]
    allowed = SETTING_NAMES | {"MLGATE_LB_BIND", "MLGATE_STATS_BIND", "MLGATE_REPLICA_1", "MLGATE_REPLICA_2",
                               "MLGATE_REPLICA_3", "MLGATE_EXTRAS"}  # HAProxy's addresses, compose's build arg
    for path in texts:
        named = set(re.findall(r"\bMLGATE_[A-Z0-9_]+", path.read_text()))
        assert named <= allowed, (path, named - allowed)


def test_compose_the_manifests_and_the_local_cluster_share_commands_and_settings() -> None:
    shared = _env_file(DEPLOY / "mlgate.env")
    config_map = yaml.safe_load((KUBERNETES / "base" / "configmap.yaml").read_text())["data"]
    assert {k: config_map[k] for k in shared} == shared  # the ConfigMap carries deploy/mlgate.env as it is

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [services[f"mlgate-{i}"] for i in (1, 2, 3)]
    for replica in replicas:
        assert replica["command"] == SERVE_ARGS
        assert replica["env_file"] == ["deploy/mlgate.env"]
        assert replica["read_only"] is True and replica["cap_drop"] == ["ALL"]
        grace = int(replica["stop_grace_period"].rstrip("s"))
        assert grace > float(shared["MLGATE_DRAIN_S"]) + float(shared["MLGATE_SHUTDOWN_TIMEOUT_S"])
        assert replica["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == MIGRATE_ARGS
    for worker in (services["worker-1"], services["worker-2"]):  # two workers, as the local cluster runs
        assert worker["command"] == ["worker"] and worker["env_file"] == ["deploy/mlgate.env"]
        assert worker["environment"]["MLGATE_JOBS_BROKER"].startswith("amqp://")
        assert worker["read_only"] is True and worker["cap_drop"] == ["ALL"]
    assert all(r["environment"]["MLGATE_JOBS_BROKER"] == services["worker-1"]["environment"]["MLGATE_JOBS_BROKER"]
               for r in replicas)  # the replicas queue the jobs, the workers run them
    haproxy = services["haproxy"]
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    assert {haproxy["environment"][f"MLGATE_REPLICA_{i}"] for i in (1, 2, 3)} == {
        f"mlgate-{i}:8000" for i in (1, 2, 3)}

    # The local cluster runs the same: deploy/mlgate.env, `db upgrade` once, `serve` per replica, this haproxy.cfg.
    cluster = (DEPLOY / "local" / "cluster.py").read_text()
    assert 'SHARED_ENV = DEPLOY / "mlgate.env"' in cluster and '"db", "upgrade"' in cluster
    assert '"serve", "--host"' in cluster and 'HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"' in cluster
    assert '"worker", "--model-repository"' in cluster and '"MLGATE_JOBS_BROKER": broker_url' in cluster


def test_the_dockerfile_is_multi_stage_slim_non_root_and_checks_v2_readiness() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) == 2 and all(s.startswith("python:${PYTHON_VERSION}-slim") for s in stages)
    final = stages[-1]
    assert not re.search(r"build-essential|gcc|g\+\+|apt-get install", final)  # no compilers in the image
    assert re.search(r"^USER 10001", final, flags=re.MULTILINE)
    assert "HEALTHCHECK" in final and "/v2/health/ready" in final
    assert 'ENTRYPOINT ["mlgate"]' in final and 'CMD ["serve"]' in final
    assert re.search(r"^ARG EXTRAS=", stages[0], flags=re.MULTILINE)
    assert "COPY --from=build /opt/mlgate /opt/mlgate" in final
    assert "models" not in "".join(line for line in final.splitlines() if line.startswith("COPY"))  # never baked


def test_the_haproxy_configuration_is_valid_and_checks_v2_readiness() -> None:
    cfg = DEPLOY / "haproxy" / "haproxy.cfg"
    assert "option httpchk GET /v2/health/ready" in cfg.read_text()
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy is None:
        if os.environ.get("MLGATE_REQUIRE_SERVICES") == "1":
            pytest.fail("HAProxy (the Debian package) is not installed")
        pytest.skip("HAProxy is not installed")
    env = {**os.environ, "MLGATE_LB_BIND": "127.0.0.1:8080", "MLGATE_STATS_BIND": "127.0.0.1:8404",
           **{f"MLGATE_REPLICA_{i}": f"127.0.0.1:{8000 + i}" for i in (1, 2, 3)}}
    done = subprocess.run([haproxy, "-c", "-f", str(cfg)], env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.anyio
async def test_the_grafana_dashboard_plots_metrics_mlgate_exposes(app_client: Any, tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "mlgate-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    def family(name: str) -> str:
        return re.sub(r"_(total|bucket|sum|count|created)$", "", name)

    used = {family(name) for expr in exprs for name in re.findall(r"\bmlgate_[a-z_]+", expr)}
    sum_model(tmp_path)
    async with app_client(tmp_path) as client:
        zeros = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
        assert (await client.post("/v2/models/sum/infer", json=zeros)).status_code == 200
        text = (await client.get("/metrics")).text
    exposed = {family(name) for name in re.findall(r"^# TYPE (mlgate_[a-z_]+) ", text, flags=re.MULTILINE)}
    assert used and used <= exposed, used - exposed
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
