"""The flowchat alert rules, as data: the single source for Grafana, promtool and the runbook.

Over 500 lines because `alert_rules()` is one table of every alert the runbook documents, kept
whole so a rule and its neighbours read together; the helpers around it are small.

`Thresholds` is the typed `flowchat:thresholds` config object (defaults = the runbook's numbers in
`app.contracts`; bounds are judged by the policy pack, not here). `alert_rules()` turns thresholds
into `AlertRule`s; `stacks.monitoring` builds Grafana rule groups from them and
`prometheus_rules_file()` renders the same rules as a Prometheus rules file for `promtool`
(tests/alerts) and for review:

    python -m stacks.alerts --stack staging --out var/alerts.staging.yaml

Every rule carries `runbook_url`, a link to the section of docs/runbook.md whose heading anchor is
in `RUNBOOK_ANCHORS`. Names, anchors, severities, groups, `for` durations and look-back windows
come from `policies.runbook.thresholds.ALERTS` (the one typed place the policy pack shares); no
duration is written in this module.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app import contracts
from policies.runbook import thresholds as limits
from policies.runbook.thresholds import ALERT_PRIORITY, ALERTS, RUNBOOK_ANCHORS, Group, Severity

METRIC_VOLUME_USED = contracts.METRIC_KUBELET_VOLUME_USED_BYTES
METRIC_VOLUME_CAPACITY = contracts.METRIC_KUBELET_VOLUME_CAPACITY_BYTES
FLOW_ERROR_RATIO = contracts.FLOW_ERROR_RATIO
EMPTY_ANSWER_RATIO = contracts.EMPTY_ANSWER_RATIO
CHROMA_PVC = contracts.CHROMA_PVC

RUNBOOK_BASE_URL = "https://github.com/flowchat/flowchat/blob/main/docs/runbook.md"
# statuses of flowchat_flow_requests_total that count as failed (app.flow.client labels HTTP
# statuses by code, and requests that got no answer "timeout" or "error"); 429 is throttling
FLOW_ERROR_STATUSES = "5..|timeout|error"
SERVICE_LABEL = "service"  # every rule carries service=flowchat; the notification policy matches it
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d|w|y))+$"  # a Prometheus duration: 30s, 5m, 1h30m
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def parse_duration(value: str) -> float:
    """Seconds in a Prometheus duration such as ``5m`` or ``1h30m``; ValueError otherwise."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a Prometheus duration: {value!r} (expected e.g. 30s, 5m, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a whole number of seconds (90 -> ``1m30s``)."""
    total = int(seconds)
    if total <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def describe_duration(value: str) -> str:
    """A Prometheus duration in words, for messages: ``2m`` -> "2 minutes", ``1h30m`` -> "1 hour
    30 minutes" (so a message never disagrees with the rule's ``for``)."""
    total = int(parse_duration(value))
    words = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            words.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(words) or "0 seconds"


def _number(value: Any) -> Any:
    """Refuse booleans and strings before pydantic's lax number parsing gets to them."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number (got {value!r})")
    return value


Number = BeforeValidator(_number)


class Thresholds(BaseModel):
    """`flowchat:thresholds`: runbook thresholds of a stack (camelCase keys, runbook defaults)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    health_probe_interval_seconds: Annotated[int, Number] = Field(
        contracts.HEALTH_PROBE_INTERVAL_SECONDS, alias="healthProbeIntervalSeconds"
    )
    health_probe_failures: Annotated[int, Number] = Field(
        contracts.HEALTH_PROBE_FAILURES, alias="healthProbeFailures"
    )
    queue_depth: Annotated[int, Number] = Field(contracts.QUEUE_DEPTH_THRESHOLD, alias="queueDepth")
    queue_depth_for: str = Field(
        contracts.QUEUE_DEPTH_FOR, alias="queueDepthFor", pattern=DURATION_PATTERN
    )
    latency_p95_seconds: Annotated[float, Number] = Field(
        contracts.CHAT_LATENCY_P95_SECONDS, alias="latencyP95Seconds"
    )
    volume_usage_ratio: Annotated[float, Number] = Field(
        contracts.VOLUME_USAGE_RATIO, alias="volumeUsageRatio"
    )
    volume_fill_forecast_hours: Annotated[int, Number] = Field(
        contracts.VOLUME_FILL_FORECAST_HOURS, alias="volumeFillForecastHours"
    )
    flow_error_ratio: Annotated[float, Number] = Field(FLOW_ERROR_RATIO, alias="flowErrorRatio")
    empty_answer_ratio: Annotated[float, Number] = Field(
        EMPTY_ANSWER_RATIO, alias="emptyAnswerRatio"
    )
    redis_memory_ratio: Annotated[float, Number] = Field(
        limits.REDIS_MEMORY_RATIO, alias="redisMemoryRatio"
    )
    ingest_queue_depth: Annotated[int, Number] = Field(
        limits.INGEST_QUEUE_DEPTH_THRESHOLD, alias="ingestQueueDepth"
    )
    ingest_queue_depth_for: str = Field(
        limits.INGEST_QUEUE_DEPTH_FOR, alias="ingestQueueDepthFor", pattern=DURATION_PATTERN
    )
    downvote_ratio: Annotated[float, Number] = Field(limits.DOWNVOTE_RATIO, alias="downvoteRatio")
    downvote_min_votes: Annotated[int, Number] = Field(
        limits.DOWNVOTE_MIN_VOTES, alias="downvoteMinVotes"
    )
    flow_tokens_daily_budget: Annotated[int, Number] = Field(
        limits.FLOW_TOKENS_DAILY_BUDGET, alias="flowTokensDailyBudget"
    )


@dataclass(frozen=True)
class AlertRule:
    """One alert. `expr` (the Prometheus form) is `query op threshold`; Grafana evaluates `query`
    and compares its last value with `threshold` (see stacks.monitoring)."""

    name: str
    query: str  # PromQL returning the value that is compared
    op: Literal[">", "<"]
    threshold: float
    for_: str  # Prometheus duration ("0s": fire on the first evaluation)
    severity: Severity
    summary: str
    description: str
    group: Group
    no_data_ok: bool = False  # True: an empty query result means healthy (absent()-style rules)
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels (service is added)

    @property
    def expr(self) -> str:
        return f"{self.query} {self.op} {_num(self.threshold)}"

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_BASE_URL}#{RUNBOOK_ANCHORS[self.name]}"

    @property
    def all_labels(self) -> dict[str, str]:
        return {SERVICE_LABEL: contracts.APP_NAME, "severity": self.severity, **self.labels}

    @property
    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
            "incident": self.incident_command,
        }

    @property
    def incident_command(self) -> str:
        """The line to run to record the incident (runbook "Escalation"; STACK: the stack label)."""
        return (
            f"python -m ops.incident open --alert {self.name} "
            f"--severity {ALERT_PRIORITY[self.severity]} --stack STACK --title TITLE"
        )


def _num(value: float) -> str:
    """20.0 -> "20", 0.8 -> "0.8" (PromQL and messages read better without trailing .0)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _sel(**matchers: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in matchers.items()) + "}"


def _rule(name: str, **fields: Any) -> AlertRule:
    """An AlertRule whose severity, group and (unless a stack overrides it) `for` come from
    `ALERTS`."""
    spec = ALERTS[name]
    fields.setdefault("for_", spec.for_)
    return AlertRule(name=name, severity=spec.severity, group=spec.group, **fields)


def alert_rules(thresholds: Thresholds, *, namespace: str, chroma_pvc: str) -> list[AlertRule]:
    """The flowchat alerts for one stack (namespace and Chroma PVC select the volume series)."""
    t = thresholds
    queue = contracts.QUEUE_NAME
    ingest = contracts.INGEST_QUEUE_NAME
    probe_window = t.health_probe_interval_seconds * t.health_probe_failures
    probe = f"{contracts.METRIC_PROBE_SUCCESS}{_sel(job=contracts.HEALTH_PROBE_JOB)}"
    queued = f"{contracts.METRIC_RQ_JOBS}{_sel(queue=queue, status='queued')}"
    ingest_queued = f"{contracts.METRIC_RQ_JOBS}{_sel(queue=ingest, status='queued')}"
    workers = f"{contracts.METRIC_RQ_WORKERS}{_sel(queue=queue)}"
    pvc = _sel(namespace=namespace, persistentvolumeclaim=chroma_pvc)
    by_pvc = "max by (namespace, persistentvolumeclaim)"
    used = f"{by_pvc} ({METRIC_VOLUME_USED}{pvc})"
    capacity = f"{by_pvc} ({METRIC_VOLUME_CAPACITY}{pvc})"
    forecast = t.volume_fill_forecast_hours * 3600
    latency = f"{contracts.METRIC_CHAT_LATENCY}_bucket"
    flow = contracts.METRIC_FLOW_REQUESTS
    feedback = contracts.METRIC_FEEDBACK
    ping = contracts.PING_PATH
    w = {name: spec.window for name, spec in ALERTS.items()}  # look-back windows
    forecast_window = w["FlowchatVectorStoreVolumeFullSoon"]
    workers_for = ALERTS["FlowchatWorkersDown"].for_
    redis_for = ALERTS["FlowchatRedisUnreachable"].for_
    votes = f"sum(increase({feedback}[{w['FlowchatDownVotes']}]))"
    down_votes = f"sum(increase({feedback}{_sel(vote='down')}[{w['FlowchatDownVotes']}]))"
    token_window = w["FlowchatFlowTokenBudget"]
    # the scores the nightly evaluation of this stack pushed (ops.evaluation.export), per score
    scores = (
        f"{contracts.METRIC_EVAL_SCORE}{_sel(job=contracts.EVAL_PUSH_JOB, namespace=namespace)}"
    )
    best = f"max by (score) (max_over_time({scores}[{w['FlowchatAnswerQualityDropped']}]))"
    last_run = (
        f"{contracts.METRIC_EVAL_LAST_RUN}{_sel(job=contracts.EVAL_PUSH_JOB, namespace=namespace)}"
    )
    stale_after = str(w["FlowchatAnswerEvaluationStale"])
    return [
        _rule(
            "FlowchatHealthCheckFailing",
            # The window spans the last N probe samples: every one of them failed.
            query=f"max_over_time({probe}[{format_duration(probe_window)}])",
            op="<",
            threshold=1,
            summary=f"{ping} failed {t.health_probe_failures} probes in a row",
            description=(
                f"The blackbox probe of {ping} (every {t.health_probe_interval_seconds}s) failed "
                f"{t.health_probe_failures} consecutive times on {{{{ $labels.instance }}}}: "
                "the API does not serve."
            ),
        ),
        _rule(
            "FlowchatQueueBacklog",
            query=f"max by (queue) ({queued})",
            op=">",
            threshold=t.queue_depth,
            for_=t.queue_depth_for,
            summary=f"More than {t.queue_depth} chat jobs wait on {queue}",
            description=(
                f"{{{{ $value }}}} jobs have been queued on {queue} for more than "
                f"{t.queue_depth_for} (threshold {t.queue_depth}): workers are missing or slow."
            ),
        ),
        _rule(
            "FlowchatChatLatencyP95High",
            query=(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate({latency}[{w['FlowchatChatLatencyP95High']}])))"
            ),
            op=">",
            threshold=t.latency_p95_seconds,
            summary=f"P95 chat latency above {_num(t.latency_p95_seconds)}s",
            description=(
                "P95 end-to-end chat latency (submission to stored answer) is "
                "{{ $value | humanize }}s, above"
                f" {_num(t.latency_p95_seconds)}s."
            ),
        ),
        _rule(
            "FlowchatVectorStoreVolumeFilling",
            query=f"{used} / {capacity}",
            op=">",
            threshold=t.volume_usage_ratio,
            summary=f"Chroma volume {chroma_pvc} over {_num(t.volume_usage_ratio * 100)}% full",
            description=(
                f"The Chroma volume {chroma_pvc} in {namespace} is "
                "{{ $value | humanizePercentage }} full "
                f"(alert at {_num(t.volume_usage_ratio * 100)}%): grow it before it fills."
            ),
        ),
        _rule(
            "FlowchatVectorStoreVolumeFullSoon",
            query=(
                f"{by_pvc} (predict_linear({METRIC_VOLUME_USED}{pvc}[{forecast_window}], "
                f"{forecast})) / {capacity}"
            ),
            op=">",
            threshold=1,
            summary=f"Chroma volume {chroma_pvc} full within {t.volume_fill_forecast_hours}h",
            description=(
                f"At the growth rate of the last {describe_duration(str(forecast_window))}, the "
                f"Chroma volume {chroma_pvc} in {namespace} fills within "
                f"{t.volume_fill_forecast_hours} hours."
            ),
        ),
        _rule(
            "FlowchatIngestBacklog",
            query=f"max by (queue) ({ingest_queued})",
            op=">",
            threshold=t.ingest_queue_depth,
            for_=t.ingest_queue_depth_for,
            summary=f"More than {t.ingest_queue_depth} uploads wait on {ingest}",
            description=(
                f"{{{{ $value }}}} ingestion jobs have been queued on {ingest} for more than "
                f"{t.ingest_queue_depth_for} (threshold {t.ingest_queue_depth}): uploads are "
                "waiting (ingestion workers missing or slow); chats are not affected."
            ),
        ),
        _rule(
            "FlowchatRedisMemoryHigh",
            # maxmemory 0 means "no limit": `> 0` drops that series instead of dividing by zero
            query=(
                f"max({contracts.METRIC_REDIS_MEMORY_USED_BYTES}) / "
                f"(max({contracts.METRIC_REDIS_MEMORY_MAX_BYTES}) > 0)"
            ),
            op=">",
            threshold=t.redis_memory_ratio,
            summary=f"Redis uses over {_num(t.redis_memory_ratio * 100)}% of its maxmemory",
            description=(
                "Redis holds {{ $value | humanizePercentage }} of its maxmemory "
                f"(alert at {_num(t.redis_memory_ratio * 100)}%): at the limit it refuses writes "
                "and chat jobs cannot be queued."
            ),
            no_data_ok=True,  # no limit set (or no series): FlowchatRedisUnreachable covers Redis
        ),
        _rule(
            "FlowchatWorkersDown",
            query=f"sum by (queue) ({workers})",
            op="<",
            threshold=1,
            summary=f"No RQ worker serves {queue}",
            description=(
                f"No worker has listened on {queue} for {describe_duration(workers_for)}: chat "
                "jobs are not answered."
            ),
        ),
        _rule(
            "FlowchatRedisUnreachable",
            # rq-exporter reads the queue from Redis: without Redis its series vanish.
            query=f"absent({contracts.METRIC_RQ_JOBS}{_sel(queue=queue)})",
            op=">",
            threshold=0,
            summary="Redis unreachable: no queue metrics",
            description=(
                f"No {contracts.METRIC_RQ_JOBS} series for {queue} for "
                f"{describe_duration(redis_for)}: rq-exporter cannot read Redis (or is down). "
                "Chat requests cannot be queued."
            ),
            no_data_ok=True,
        ),
        _rule(
            "FlowchatFlowErrors",
            # Failed requests (5xx, timeouts, transport errors) over all requests. `or vector(0)`
            # keeps the ratio defined (0) while no request has failed yet, so healthy traffic
            # evaluates to 0 rather than to an empty result (Grafana's NoData).
            query=(
                f'(sum(rate({flow}{{status=~"{FLOW_ERROR_STATUSES}"}}'
                f"[{w['FlowchatFlowErrors']}])) or vector(0)) / "
                f"sum(rate({flow}[{w['FlowchatFlowErrors']}]))"
            ),
            op=">",
            threshold=t.flow_error_ratio,
            summary=(
                f"Over {_num(t.flow_error_ratio * 100)}% of Flow requests fail "
                "(5xx, timeout or connection error)"
            ),
            description=(
                "{{ $value | humanizePercentage }} of Flow chat-completion requests failed with "
                "5xx, a timeout or a connection error in the last "
                f"{describe_duration(str(w['FlowchatFlowErrors']))}: Flow outage. Open an "
                "incident with the Flow team."
            ),
        ),
        _rule(
            "FlowchatEmptyAnswers",
            query=(
                f"sum(rate({contracts.METRIC_EMPTY_ANSWERS}[{w['FlowchatEmptyAnswers']}])) / "
                f"sum(rate({contracts.METRIC_CHAT_ANSWERS}[{w['FlowchatEmptyAnswers']}]))"
            ),
            op=">",
            threshold=t.empty_answer_ratio,
            summary=f"Over {_num(t.empty_answer_ratio * 100)}% of chat answers are empty",
            description=(
                "{{ $value | humanizePercentage }} of answers in the last "
                f"{describe_duration(str(w['FlowchatEmptyAnswers']))} were empty: "
                "retrieval returns low-signal chunks."
            ),
        ),
        _rule(
            "FlowchatDownVotes",
            # the ratio exists only while enough votes were cast: one vote never pages (the outer
            # parentheses keep `and` from binding the threshold comparison in the Prometheus form)
            query=(
                f"(({down_votes} or vector(0)) / {votes} "
                f"and on() ({votes} >= {t.downvote_min_votes}))"
            ),
            op=">",
            threshold=t.downvote_ratio,
            summary=f"Over {_num(t.downvote_ratio * 100)}% of answers are voted down",
            description=(
                "{{ $value | humanizePercentage }} of the votes in the last "
                f"{describe_duration(str(w['FlowchatDownVotes']))} were down-votes (at least "
                f"{t.downvote_min_votes} votes): users find the answers wrong or unhelpful."
            ),
            no_data_ok=True,  # fewer votes than the minimum: nothing to judge
        ),
        _rule(
            "FlowchatAnswerQualityDropped",
            query=f"{best} - max by (score) ({scores})",
            op=">",
            threshold=contracts.EVAL_DROP_TOLERANCE,
            summary=(
                "An answer evaluation score fell below its best of the last "
                f"{describe_duration(str(w['FlowchatAnswerQualityDropped']))}"
            ),
            description=(
                "The nightly answer evaluation's {{ $labels.score }} is {{ $value }} below its "
                f"best of the last {describe_duration(str(w['FlowchatAnswerQualityDropped']))} "
                "(scores 0-1): answers got worse (retrieval, citations, refusals or the judge's "
                "groundedness and relevance)."
            ),
            no_data_ok=True,  # no evaluation pushed for this stack: nothing to compare
        ),
        _rule(
            "FlowchatAnswerEvaluationStale",
            # the Pushgateway keeps serving the last push: its timestamp says how old it is
            query=f"time() - max({last_run})",
            op=">",
            threshold=parse_duration(stale_after),
            summary=(
                "The nightly answer evaluation has not pushed for more than "
                f"{describe_duration(stale_after)}"
            ),
            description=(
                "No answer evaluation of this stack has pushed its scores for more than "
                f'{describe_duration(stale_after)}: the workflow "evaluate" stopped running or '
                "failed before its push, and FlowchatAnswerQualityDropped compares stale scores."
            ),
            no_data_ok=True,  # never pushed for this stack (the nightly evaluates staging only)
        ),
        _rule(
            "FlowchatFlowTokenBudget",
            # every API/worker pod exports the same Redis-held counter: one copy, then all kinds
            # and keys
            query=daily_tokens_query(token_window),
            op=">",
            threshold=t.flow_tokens_daily_budget,
            summary=(
                f"Flow tokens of the last {describe_duration(str(token_window))} over the "
                f"budget of {t.flow_tokens_daily_budget:,}"
            ),
            description=(
                "{{ $value | humanize }} Flow tokens (prompt + completion, all keys) in the last "
                f"{describe_duration(str(token_window))}, above the stack's daily budget of "
                f"{t.flow_tokens_daily_budget:,}: Flow bills by the token."
            ),
            no_data_ok=True,  # no chat yet: no token series, nothing spent
        ),
    ]


def daily_tokens_query(window: str | None = None, by: str = "", kind: str = "") -> str:
    """Flow tokens over ``window`` (the budget alert's, 24h), counted once although every pod
    exports the counter; ``by`` keeps labels (``kind``, ``key``), ``kind`` selects prompt or
    completion tokens. The alert and the dashboard use this one query."""
    window = window or ALERTS["FlowchatFlowTokenBudget"].window
    grouping = f" by ({by})" if by else ""
    selector = _sel(kind=kind) if kind else ""
    return (
        f"sum{grouping}(max without (instance, pod) "
        f"(increase({contracts.METRIC_FLOW_TOKENS}{selector}[{window}])))"
    )


def group_name(group: Group) -> str:
    """Name of the rule group (Grafana and Prometheus) holding the alerts of `group`."""
    return f"{contracts.APP_NAME}-{group}"


def prometheus_rules_file(
    thresholds: Thresholds, *, namespace: str, chroma_pvc: str = CHROMA_PVC
) -> dict[str, Any]:
    """The alerts as a Prometheus rules file (``{"groups": [...]}``), for promtool and review."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules(thresholds, namespace=namespace, chroma_pvc=chroma_pvc):
        entry: dict[str, Any] = {"alert": rule.name, "expr": rule.expr}
        if parse_duration(rule.for_) > 0:
            entry["for"] = rule.for_
        entry["labels"] = rule.all_labels
        entry["annotations"] = rule.annotations
        groups.setdefault(group_name(rule.group), []).append(entry)
    return {"groups": [{"name": name, "rules": rules} for name, rules in groups.items()]}


def stack_thresholds(stack: str, root: Path = Path(".")) -> Thresholds:
    """`flowchat:thresholds` of a stack: Pulumi.<stack>.yaml, else Pulumi.yaml's default, else
    the runbook defaults."""
    raw: Any = None
    stack_file, project_file = root / f"Pulumi.{stack}.yaml", root / "Pulumi.yaml"
    if stack_file.exists():
        document = yaml.safe_load(stack_file.read_text()) or {}
        raw = (document.get("config") or {}).get(f"{contracts.APP_NAME}:thresholds")
    if raw is None and project_file.exists():
        declared = ((yaml.safe_load(project_file.read_text()) or {}).get("config") or {}).get(
            "thresholds"
        )
        raw = declared.get("default") if isinstance(declared, dict) else None
    if isinstance(raw, str):  # a JSON string, the way the CLI hands objects over
        raw = json.loads(raw)
    return Thresholds.model_validate(raw or {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.alerts",
        description="Write the flowchat alerts of a stack as a Prometheus rules file "
        "(the thresholds come from flowchat:thresholds in Pulumi.<stack>.yaml).",
    )
    parser.add_argument("--stack", required=True, help="stack name, e.g. staging or prod")
    parser.add_argument("--out", default="-", help="output file (default: stdout)")
    parser.add_argument("--namespace", help="Kubernetes namespace (default: flowchat-<stack>)")
    parser.add_argument("--chroma-pvc", default=CHROMA_PVC, help=f"default: {CHROMA_PVC}")
    parser.add_argument("--root", type=Path, default=Path("."), help="where Pulumi.<stack>.yaml is")
    args = parser.parse_args(argv)
    try:
        thresholds = stack_thresholds(args.stack, args.root)
    except (ValidationError, ValueError) as exc:
        print(f"error: flowchat:thresholds of stack {args.stack}: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or contracts.namespace_for(args.stack)
    document = prometheus_rules_file(thresholds, namespace=namespace, chroma_pvc=args.chroma_pvc)
    text = yaml.safe_dump(document, sort_keys=False, width=1000)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        count = sum(len(g["rules"]) for g in document["groups"])
        print(f"wrote {count} alerts for stack {args.stack} to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
