"""stacks/config.py: typed config, defaults that agree with Pulumi.yaml, errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError, StackConfig, parse_config
from stacks.render import stack_config

ROOT = Path(__file__).resolve().parents[2]
AZURE = json.dumps({"resourceGroup": "rg", "tenantId": "t"})
PLATFORM = {
    "clusterName": "aks-test",
    "ingressClass": "webapprouting.kubernetes.azure.com",
    "ingressNamespace": "app-routing-system",
    "storageClass": "managed-csi",
    "sharedStorageClass": "azurefile-csi",
    "clusterIssuer": "letsencrypt",
    "hostname": "chat.flowchat.test",
    "oidcIssuerUrl": "https://oidc.test/",
    "prometheusUrl": "http://prometheus.monitoring.svc:9090",
    "proberUrl": "blackbox-exporter.monitoring.svc:9115",
    "pushgatewayUrl": "http://pushgateway.monitoring.svc:9091",
    "kedaNamespace": "keda",
    "monitoringNamespace": "monitoring",
    "networkPolicyEngine": "azure",
    "serviceNamespaces": ["flowchat-staging"],
}
BASE = {
    "platform": json.dumps({"external": PLATFORM}),
    "azure": AZURE,
    "alerting": json.dumps({"type": "email", "addresses": ["ops@example.com"]}),
}


def parse(**raw: str) -> StackConfig:
    return parse_config("staging", {**BASE, **raw})


def error_of(**raw: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(**raw)
    return str(info.value)


def test_defaults_and_stack_derived_names() -> None:
    config = parse()
    assert config.namespace == "flowchat-staging"
    assert config.vault_name == "flowchat-staging-kv"
    assert config.alerting.contact_point == "flowchat-staging"
    assert config.thresholds.queue_depth == 20
    assert config.image.ref == "ghcr.io/flowchat/flowchat:0.1.0"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"api": '{"replicas": -1}'}, "flowchat:api.replicas: must be >= 0 (got -1)"),
        ({"worker": '{"maxReplicas": -2}'}, "flowchat:worker.maxReplicas: must be >= 0"),
        # no scale to zero: readiness is 503 without workers, so nothing could wake KEDA
        ({"worker": '{"minReplicas": 0}'}, "flowchat:worker.minReplicas: must be >= 1 (got 0)"),
        # a pod carries threadsPerPod chats: a larger per-replica target leaves chats waiting
        (
            {"worker": '{"threadsPerPod": 8, "inFlightPerReplica": 9}'},
            "flowchat:worker: inFlightPerReplica (9) must be <= threadsPerPod (8)",
        ),
        (
            {"worker": '{"queueLengthPerReplica": 33}'},
            "flowchat:worker: queueLengthPerReplica (33) must be <= threadsPerPod (32)",
        ),
        ({"worker": '{"threadsPerPod": 0}'}, "flowchat:worker.threadsPerPod: must be >= 1"),
        ({"worker": '{"threadsPerPod": 257}'}, "flowchat:worker.threadsPerPod: must be <= 256"),
        (
            {"env": '{"WORKER_THREADS": "8"}'},
            "WORKER_THREADS is set by the stack itself",
        ),
        ({"cloud": "gcp"}, "flowchat:cloud: must be one of 'azure' or 'aws' (got 'gcp')"),
        (
            {"thresholds": '{"queueDepth": "lots"}'},
            "flowchat:thresholds.queueDepth: must be a number",
        ),
        ({"thresholds": '{"queueDepthFor": "soon"}'}, "flowchat:thresholds.queueDepthFor"),
        ({"image": '{"tag": "latest"}'}, "flowchat:image.tag: must not be 'latest'"),
        ({"image": '{"repository": "ghcr.io/x/y:1.0"}'}, "flowchat:image.repository"),
        (
            {"redis": '{"volumeSize": "big"}'},
            "flowchat:redis.volumeSize: must be a Kubernetes quantity",
        ),
        ({"redis": '{"image": "redis"}'}, "flowchat:redis.image: must carry an explicit tag"),
        # Chroma runs from the service image: an image of its own would be silently unused
        (
            {"chroma": '{"image": "chromadb/chroma:1.5.9"}'},
            "flowchat:chroma.image: is not a known setting",
        ),
        (
            {"platform": json.dumps({"external": {**PLATFORM, "hostname": "Not A Host"}})},
            "flowchat:platform.external.hostname: must be a lower-case DNS name",
        ),
        (
            {"platform": json.dumps({"external": {**PLATFORM, "hostname": "chat.example.com"}})},
            "flowchat:platform.external.hostname: is a documentation domain",
        ),
        (
            {"platform": json.dumps({"external": PLATFORM, "stack": "flowchat-platform/x"})},
            "flowchat:platform: set exactly one of stack",
        ),
        ({"platform": "{}"}, "flowchat:platform: set exactly one of stack"),
        ({"api": "[1, 2]"}, "flowchat:api: must be an object"),
        ({"bogus": "1"}, "flowchat:bogus: is not a known setting"),
        ({"azure": "{}"}, "flowchat:azure.resourceGroup: is required when cloud is azure"),
        ({"alerting": '{"type": "slack"}'}, "flowchat:alerting: type slack needs url"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(raw: dict[str, str], message: str) -> None:
    assert message in error_of(**raw)


def test_aws_does_not_need_azure_settings() -> None:
    config = parse(cloud="aws", azure="{}", aws=json.dumps({"roleArn": "arn:aws:iam::1:role/r"}))
    assert config.cloud == "aws" and config.aws.region == "eu-west-1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # EKS IRSA needs the cluster's IAM OIDC provider: from the platform, or config
        (
            {"cloud": "aws", "azure": "{}"},
            "flowchat:platform.external.oidcProviderArn: is required",
        ),
        ({"grafana": json.dumps({"url": "grafana.example.com"})}, "flowchat:grafana.url"),
    ],
)
def test_identity_inputs_are_required_unless_an_existing_identity_is_given(
    raw: dict[str, str], message: str
) -> None:
    """The stack creates External Secrets' identity from the cluster's OIDC issuer: without it
    (and without an existing identity) the first run would fail at the cloud, so config fails."""
    assert message in error_of(**raw)
    assert parse(cloud="aws", azure="{}", aws=json.dumps({"roleArn": "arn:aws:iam::1:role/r"}))
    platform = json.dumps({"external": {**PLATFORM, "oidcProviderArn": "arn:aws:iam::1:oidc/x"}})
    assert parse(cloud="aws", azure="{}", platform=platform).cloud == "aws"


def test_the_oidc_issuer_comes_from_the_platform() -> None:
    """Azure needs no oidcIssuerUrl in config (issue 19: no placeholder issuer)."""
    config = parse(azure=json.dumps({"resourceGroup": "rg", "tenantId": "t"}))
    assert config.azure.oidc_issuer_url is None
    assert config.platform.external is not None
    assert config.platform.external.oidc_issuer_url == PLATFORM["oidcIssuerUrl"]


def test_grafana_auth_is_secret_config_merged_and_never_echoed() -> None:
    config = parse_config(
        "staging", {**BASE, "grafanaAuth": "glsa_token"}, frozenset({"grafanaAuth"})
    )
    assert config.grafana.auth is not None
    assert config.grafana.auth.get_secret_value() == "glsa_token"
    assert "glsa_token" not in repr(config)


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            "staging",
            {**BASE, "thresholds": '{"queueDepth": "hush-hush"}'},
            frozenset({"thresholds"}),
        )
    assert "flowchat:thresholds.queueDepth: must be a number" in str(info.value)
    assert "hush-hush" not in str(info.value)
    config = parse_config(
        "prod",
        {**BASE, "alerting": '{"type": "pagerduty"}', "alertingUrl": "s3cr3t-key"},
        frozenset({"alertingUrl"}),
    )
    assert config.alerting.integration_key is not None
    assert config.alerting.integration_key.get_secret_value() == "s3cr3t-key"
    assert "s3cr3t-key" not in repr(config)


def test_project_defaults_agree_with_config_defaults() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    defaults = StackConfig.model_validate(
        {
            "stack": "x",
            "platform": {"stack": "flowchat-platform/x"},
            "alerting": {"addresses": ["a@example.com"]},
        }
    ).model_dump(by_alias=True)
    for key, decl in project["config"].items():
        if "default" not in decl:
            continue
        if isinstance(decl["default"], dict):
            for field, value in decl["default"].items():
                assert defaults[key][field] == value, f"{key}.{field}"
        else:
            assert str(defaults[key]) == str(decl["default"]), key


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_files_parse_and_commit_no_secrets(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert "secure:" not in text
    values, secret = stack_config(stack)
    # delivered by the stack's ESC environment, a placeholder offline
    chat = ["flowchat:alertingChatUrl"] if stack == "prod" else []  # prod's warnings webhook
    assert secret == sorted(
        ["flowchat:alertingUrl", *chat, "flowchat:grafanaAuth", "flowchat:registryAuth"]
    )
    raw = {k.removeprefix("flowchat:"): v for k, v in values.items() if k.startswith("flowchat:")}
    config = parse_config(stack, raw, frozenset({"alertingUrl"}))
    assert config.stack == stack


def test_stacks_differ_where_they_should() -> None:
    configs = {}
    for stack in ("staging", "prod"):
        values, _ = stack_config(stack)
        raw = {
            k.removeprefix("flowchat:"): v for k, v in values.items() if k.startswith("flowchat:")
        }
        configs[stack] = parse_config(stack, raw, frozenset({"alertingUrl"}))
    staging, prod = configs["staging"], configs["prod"]
    assert (staging.cloud, prod.cloud) == ("azure", "aws")
    assert staging.api.replicas == 1 and prod.api.replicas == 3
    # each reads its own platform stack (cluster values, hostname)
    assert staging.platform.stack == "flowchat-platform/staging"
    assert prod.platform.stack == "flowchat-platform/prod"
    assert (staging.alerting.type, prod.alerting.type) == ("slack", "pagerduty")
    # prod pages only for critical: its warnings go to a chat contact point of their own
    assert staging.alerting.chat is None
    assert prod.alerting.chat is not None
    assert prod.alerting.chat.contact_point != prod.alerting.contact_point
    assert staging.grafana.url != prod.grafana.url


def test_overrides_replace_keys_or_set_paths() -> None:
    values, _ = stack_config(
        "staging",
        config_overrides={"flowchat:cloud": "aws", "thresholds.queueDepth": "15"},
    )
    assert values["flowchat:cloud"] == "aws"
    thresholds = json.loads(values["flowchat:thresholds"])
    assert thresholds["queueDepth"] == 15
    assert thresholds["queueDepthFor"] == "5m"  # the rest of the object is kept
    values, _ = stack_config("staging", config_overrides={"thresholds": '{"queueDepth": 50}'})
    assert json.loads(values["flowchat:thresholds"]) == {"queueDepth": 50}


def test_requirements_txt_covers_the_program_with_pyproject_bounds() -> None:
    """`pulumi install` on a fresh clone installs requirements.txt: every third-party module the
    program imports is there, with the bounds pyproject.toml gives it."""
    import ast
    import importlib.metadata
    import re
    import sys
    import tomllib

    reqs = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!\[]", line, maxsplit=1)[0]
            reqs[name.lower().replace("_", "-")] = line
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["infra"]]
    pinned = {
        re.split(r"[<>=!\[]", s, maxsplit=1)[0].lower(): s.split("#")[0].strip() for s in specs
    }
    for name, line in reqs.items():
        assert pinned.get(name) == line, name
    files = [
        ROOT / "__main__.py",
        ROOT / "app" / "contracts.py",
        ROOT / "app" / "core" / "settings.py",
    ]
    files += sorted((ROOT / "stacks").glob("*.py"))
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    local = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    third_party = modules - set(sys.stdlib_module_names) - local - {"__future__"}
    dists = importlib.metadata.packages_distributions()
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        assert names & set(reqs), f"{module} ({names}) is not in requirements.txt"


# --- issue 14: token prices and the OpenTelemetry collector -------------------------------------
@pytest.mark.parametrize(
    "value",
    ["otel-collector:4318", "http://otel-collector.monitoring.svc", "http://c:4318/v1/traces"],
)
def test_otlp_endpoint_must_be_a_url_with_a_port(value: str) -> None:
    assert "flowchat:otlpEndpoint: " in error_of(otlpEndpoint=value)
    assert "with its port" in error_of(otlpEndpoint=value)


def test_otlp_endpoint_port_and_default() -> None:
    assert (parse().otlp_endpoint, parse().otlp_port) == (None, None)
    config = parse(otlpEndpoint="http://otel-collector.monitoring.svc:4318/")
    assert config.otlp_endpoint == "http://otel-collector.monitoring.svc:4318"
    assert config.otlp_port == 4318


def test_otlp_endpoint_cannot_be_set_through_env() -> None:
    message = error_of(env='{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}')
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set by the stack itself" in message


def test_token_prices_are_per_1000_tokens_and_not_negative() -> None:
    prices = parse(tokenPrices='{"prompt": 0.002, "completion": 0.008}').token_prices
    assert (prices.prompt, prices.completion) == (0.002, 0.008)
    assert "flowchat:tokenPrices.prompt" in error_of(tokenPrices='{"prompt": -1}')


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_min_workers_drain_a_full_queue_within_the_runbook_window(stack: str) -> None:
    """The runbook expects a full queue (the API's maxQueueDepth) to drain within
    QUEUE_DRAIN_SECONDS. The stack's minimum worker pods manage it when every chat's Flow call
    takes one whole FLOW_TIMEOUT_SECONDS: pods x threadsPerPod chats per timeout. (With one chat
    per loop, staging's one loop would need 1,000 s. Flow failing outright is not draining: the
    client's retries then take up to Settings' worst case per chat, and the maintenance mode
    stops new chats.)"""
    from app.contracts import QUEUE_DRAIN_SECONDS
    from app.core.settings import Settings

    values, _ = stack_config(stack)
    raw = {k.removeprefix("flowchat:"): v for k, v in values.items() if k.startswith("flowchat:")}
    config = parse_config(stack, raw, frozenset({"alertingUrl"}))
    flow_seconds = Settings.model_validate(config.env).FLOW_TIMEOUT_SECONDS
    in_flight = config.worker.min_replicas * config.worker.threads_per_pod
    drain_seconds = config.api.max_queue_depth * flow_seconds / in_flight
    assert drain_seconds <= QUEUE_DRAIN_SECONDS, (stack, drain_seconds)
