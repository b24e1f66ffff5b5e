"""The Prometheus queries KEDA scales the workers on, evaluated by promtool over the series the
API replicas export: every replica reports the same rq_jobs gauge (read from Redis)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from stacks_testlib import Rendered, render_components

from app.contracts import INGEST_WORKER_DEPLOYMENT, WORKER_DEPLOYMENT

PROMTOOL = shutil.which("promtool")


def _in_flight_query(deployment: str) -> str:
    rendered = Rendered("prod", "aws", render_components("prod"))
    triggers = rendered.manifest("ScaledObject", deployment)["spec"]["triggers"]
    (prometheus,) = [t for t in triggers if t["type"] == "prometheus"]
    return prometheus["metadata"]["query"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (CI installs it)")
@pytest.mark.parametrize(
    ("deployment", "queue"),
    [(WORKER_DEPLOYMENT, "flow_tasks"), (INGEST_WORKER_DEPLOYMENT, "flow_ingest")],
)
def test_in_flight_counts_each_job_once_however_many_api_replicas(
    deployment: str, queue: str, tmp_path: Path
) -> None:
    query = _in_flight_query(deployment)
    series = []
    for pod in ("api-0", "api-1", "api-2"):  # prod runs three API replicas
        for status, value in (("queued", 5), ("started", 20), ("finished", 700)):
            labels = f'namespace="flowchat-prod",queue="{queue}",status="{status}",pod="{pod}"'
            series.append({"series": f"rq_jobs{{{labels}}}", "values": f"{value}x4"})
    # the other queue's jobs do not count
    series.append(
        {"series": 'rq_jobs{queue="other",status="started",pod="api-0"}', "values": "9x4"}
    )
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    test = {
        "rule_files": ["empty.yaml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                # 5 waiting + 20 running, not three replicas' worth (75)
                "promql_expr_test": [
                    {"expr": query, "eval_time": "30s", "exp_samples": [{"value": 25}]}
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
