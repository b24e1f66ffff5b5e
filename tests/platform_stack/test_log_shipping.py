"""platform_stack/log_shipping.py: the rendered Fluent Bit config, parsed, against what the app's
logging module really writes; the Helm release under Pulumi mocks."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.observability import logs
from platform_stack.log_shipping import (
    API_KEY_ENV,
    CHART_VERSION,
    LogShipping,
    LogShippingArgs,
    aws_store,
    azure_store,
    fluent_bit_config,
)
from stacks.render import render_program

ARGS = LogShippingArgs(
    stack="prod",
    elasticsearch_url="https://logs.example.com:9243/",
    credentials_secret="elasticsearch-credentials",
    store=aws_store("prod", "eu-west-1", "arn:aws:iam::123456789012:role/flowchat-prod-logs"),
)


# The es output's properties (fluent-bit docs, pipeline/outputs/elasticsearch.md) plus the common
# output ones (name, match, retry_limit, workers) and TLS's (administration/transport-security.md).
ES_OUTPUT_KEYS = frozenset(
    {
        "name",
        "match",
        "retry_limit",
        "workers",
        "tls",
        "tls.verify",
        "tls.ca_file",
        "host",
        "port",
        "path",
        "index",
        "type",
        "suppress_type_name",
        "time_key",
        "time_key_format",
        "replace_dots",
        "http_user",
        "http_passwd",
        "http_api_key",
        "cloud_id",
        "cloud_auth",
        "generate_id",
        "buffer_size",
        "compress",
        "logstash_format",
        "trace_error",
        "write_operation",
    }
)


def parse(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Fluent Bit's classic format: `[SECTION]` then `key value` lines (keys may repeat)."""
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([A-Z]+)\]", line)
        if header:
            sections.append((header.group(1), {}))
            continue
        assert sections, f"a property outside a section: {line!r}"
        key, _, value = line.partition(" ")
        sections[-1][1].setdefault(key.lower(), []).append(value.strip())
    return sections


def config_sections() -> list[tuple[str, dict[str, list[str]]]]:
    rendered = fluent_bit_config(ARGS)
    return parse("\n".join(rendered[k] for k in ("inputs", "filters", "outputs")))


def one(sections, kind: str, name: str) -> dict[str, list[str]]:
    found = [p for k, p in sections if k == kind and p["name"] == [name]]
    assert len(found) == 1, (kind, name)
    return found[0]


def app_lines() -> list[dict]:
    """Real JSON lines from the app's logging module, with every id bound."""
    stream = io.StringIO()
    logs.configure_logging("worker", fmt="json", level="INFO", stream=stream)
    try:
        with logs.bound(**{field: f"{field}-1" for field in logs.LOG_FIELDS}):
            logging.getLogger("app.test").info(
                "chat done", extra={field: 1 for field in logs.EXTRA_FIELDS}
            )
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logging.getLogger("app.test").exception("failed")
    finally:
        logs.configure_logging("worker", fmt="json", stream=io.StringIO())
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_pipeline_reads_cri_lines_enriches_parses_json_and_ships_to_the_stack_index() -> None:
    sections = config_sections()
    assert [k for k, _ in sections] == ["INPUT", "FILTER", "FILTER", "FILTER", "FILTER", "OUTPUT"]
    tail = one(sections, "INPUT", "tail")
    assert tail["path"] == ["/var/log/containers/*.log"]
    assert tail["multiline.parser"] == ["cri"]
    kube = one(sections, "FILTER", "kubernetes")
    assert kube["kube_tag_prefix"] == ["kube.var.log.containers."]
    grep = one(sections, "FILTER", "grep")
    assert grep["regex"] == ["$kubernetes['namespace_name'] ^flowchat-prod$"]
    parser = one(sections, "FILTER", "parser")
    assert (parser["key_name"], parser["parser"]) == (["log"], ["json"])
    es = one(sections, "OUTPUT", "es")
    assert es["host"] == ["logs.example.com"] and es["port"] == ["9243"]
    assert es["index"] == ["flowchat-prod"]
    assert es["tls"] == ["On"] and es["tls.verify"] == ["On"]
    assert es["http_api_key"] == [f"${{{API_KEY_ENV}}}"]
    # only keys of the es output's config map (fluent-bit docs, pipeline/outputs/elasticsearch.md,
    # and TLS's): an unknown key makes Fluent Bit refuse the whole config when it starts
    assert set(es) <= ES_OUTPUT_KEYS, set(es) - ES_OUTPUT_KEYS
    # the order of the filters is the pipeline's: enrich, keep the stack, parse, allowlist
    assert [p["name"][0] for k, p in sections if k == "FILTER"] == [
        "kubernetes",
        "grep",
        "parser",
        "record_modifier",
    ]


def test_the_indexed_fields_are_what_the_app_writes() -> None:
    allow = set(one(config_sections(), "FILTER", "record_modifier")["allowlist_key"])
    assert set(logs.LOG_FIELDS) <= allow
    assert {"job_id", "request_id", "trace_id", "api_key_id"} <= allow
    lines = app_lines()
    assert len(lines) == 2
    written = {key for line in lines for key in line}
    assert set(logs.LOG_FIELDS) <= written  # the app really writes every id
    assert written <= allow - {"kubernetes"}, written - allow  # and nothing it writes is dropped
    # one line, as the kubelet stores it (CRI), through the pipeline's steps
    cri = f"2026-12-04T16:00:00.000000001Z stdout F {json.dumps(lines[0])}"
    record = {"log": cri.split(" ", 3)[3], "kubernetes": {"namespace_name": "flowchat-prod"}}
    record.update(json.loads(record["log"]))  # parser json on `log`, Reserve_Data On
    indexed = {k: v for k, v in record.items() if k in allow}
    assert indexed["job_id"] == "job_id-1" and indexed["api_key_id"] == "api_key_id-1"
    assert "log" not in indexed  # the raw line is not indexed twice


def test_a_plain_http_elasticsearch_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        fluent_bit_config(
            LogShippingArgs(
                stack="prod",
                elasticsearch_url="http://es:9200",
                credentials_secret="s",
                store=ARGS.store,
            )
        )


def test_the_helm_release_is_pinned_and_takes_the_key_from_a_secret() -> None:
    resources = render_program(lambda: LogShipping("platform", ARGS), stack="prod", config={})
    (release,) = [r for r in resources if r.type == "kubernetes:helm.sh/v3:Release"]
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"]) == ("fluent-bit", CHART_VERSION)
    assert re.fullmatch(r"\d+\.\d+\.\d+", inputs["version"])
    assert inputs["repositoryOpts"]["repo"] == "https://fluent.github.io/helm-charts"
    assert inputs["namespace"] == "logging"
    assert inputs["values"]["config"] == fluent_bit_config(ARGS)
    (env,) = inputs["values"]["env"]
    assert env == {
        "name": API_KEY_ENV,
        "valueFrom": {"secretKeyRef": {"name": "elasticsearch-credentials", "key": "apiKey"}},
    }
    assert release.parent_urn and "LogShipping" in release.parent_urn


def test_the_api_key_secret_is_synced_from_the_secret_manager_before_fluent_bit_starts() -> None:
    """The Secret the release reads is written by an ExternalSecret in `logging` (nothing else
    creates it), from the stack's secret-manager entry, through a SecretStore that
    authenticates as a ServiceAccount bound to the given cloud identity."""
    resources = render_program(lambda: LogShipping("platform", ARGS), stack="prod", config={})
    by_kind = {
        r.inputs.get("kind"): r
        for r in resources
        if r.type.startswith("kubernetes:external-secrets.io")
    }
    external, store = by_kind["ExternalSecret"], by_kind["SecretStore"]
    (release,) = [r for r in resources if r.type == "kubernetes:helm.sh/v3:Release"]
    (account,) = [r for r in resources if r.type == "kubernetes:core/v1:ServiceAccount"]
    env_secret = release.inputs["values"]["env"][0]["valueFrom"]["secretKeyRef"]
    assert external.inputs["metadata"]["namespace"] == "logging"
    assert external.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    spec = external.inputs["spec"]
    assert spec["target"]["name"] == env_secret["name"] == "elasticsearch-credentials"
    assert spec["data"] == [
        {
            "secretKey": env_secret["key"],
            "remoteRef": {"key": "flowchat/prod/ELASTICSEARCH_API_KEY"},
        }
    ]
    assert spec["secretStoreRef"] == {
        "name": store.inputs["metadata"]["name"],
        "kind": "SecretStore",
    }
    aws = store.inputs["spec"]["provider"]["aws"]
    assert (aws["service"], aws["region"]) == ("SecretsManager", "eu-west-1")
    assert aws["auth"]["jwt"]["serviceAccountRef"]["name"] == account.inputs["metadata"]["name"]
    assert account.inputs["metadata"]["namespace"] == "logging"
    assert account.inputs["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/flowchat-prod-logs"
    }
    assert external.urn in release.dependencies  # pods start once the Secret exists


def test_on_azure_the_key_comes_from_the_stack_vault_with_workload_identity() -> None:
    store = azure_store("staging", client_id="1111", tenant_id="2222")
    assert store.entry == "elasticsearch-api-key"
    kv = store.provider["azurekv"]
    assert kv["vaultUrl"] == "https://flowchat-staging-kv.vault.azure.net"
    assert (kv["authType"], kv["tenantId"]) == ("WorkloadIdentity", "2222")
    assert store.account_annotations["azure.workload.identity/client-id"] == "1111"
    with pytest.raises(ValueError, match="clientId"):
        azure_store("staging", client_id="", tenant_id="2222")
    with pytest.raises(ValueError, match="roleArn"):
        aws_store("prod", "eu-west-1", "")


@pytest.mark.skipif(
    shutil.which("fluent-bit") is None,
    reason=(
        "needs the fluent-bit binary on PATH: Debian 12 (this machine, CI) packages no fluent-bit, "
        "so the config-map check above (ES_OUTPUT_KEYS) stands in for `fluent-bit --dry-run`"
    ),
)
def test_fluent_bit_accepts_the_rendered_config(tmp_path: Path) -> None:
    rendered = fluent_bit_config(ARGS)
    conf = tmp_path / "fluent-bit.conf"
    conf.write_text("\n".join(rendered[k] for k in ("inputs", "filters", "outputs")))
    done = subprocess.run(
        ["fluent-bit", "--dry-run", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ES_API_KEY": "x", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr + done.stdout
