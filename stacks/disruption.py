"""PodDisruptionBudgets: what a voluntary eviction (a node drain) may take at once."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from app.contracts import API_DEPLOYMENT, INGEST_WORKER_DEPLOYMENT, WORKER_DEPLOYMENT
from stacks.kube import Component, selector_labels
from stacks.pods import ServiceScope

# Voluntary evictions (node drains) take one API or worker pod at a time. Redis and Chroma are
# single replicas: a budget of minAvailable 1 would block every node drain (cluster upgrades
# stall), so they get none; a drain restarts them on another node (their volumes follow).
BUDGETS: tuple[tuple[str, Component, dict[str, int]], ...] = (
    (API_DEPLOYMENT, "api", {"maxUnavailable": 1}),
    (WORKER_DEPLOYMENT, "worker", {"maxUnavailable": 1}),
    (INGEST_WORKER_DEPLOYMENT, "ingest-worker", {"maxUnavailable": 1}),
)


def disruption_budgets(scope: ServiceScope) -> None:
    for name, component, rule in BUDGETS:
        k8s.policy.v1.PodDisruptionBudget(
            f"{scope.name}-{component}-pdb",
            metadata=scope.meta(name, component),
            spec={
                **rule,
                "selector": {"matchLabels": selector_labels(scope.config.stack, component)},
            },
            opts=scope.opts(),
        )
