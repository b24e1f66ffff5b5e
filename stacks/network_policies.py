"""NetworkPolicies: a table of who may talk to whom, read by one builder.

Each workload gets one policy with both directions; `policy_table` lists, per workload, the peers
it admits (ingress) and the peers it may reach (egress), each rule a set of peers and TCP/UDP
ports. Everything not listed is denied once a policy engine enforces the policies.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_kubernetes as k8s

from app.contracts import (
    API_DEPLOYMENT,
    APP_NAME,
    DEFAULT_PORT,
    INGEST_WORKER_DEPLOYMENT,
    METRICS_PORT,
    WORKER_DEPLOYMENT,
)
from stacks.kube import Component, selector_labels
from stacks.platform_ref import Platform
from stacks.pods import Manifest, ServiceScope
from stacks.stores import CHROMA_NAME, CHROMA_PORT, REDIS_NAME, REDIS_PORT

DNS_PORT = 53
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"
APP_PODS: tuple[Component, ...] = ("api", "worker", "ingest-worker")  # clients of Redis/Chroma


@dataclass(frozen=True)
class Pods:
    """This stack's pods of the given components."""

    components: tuple[Component, ...]

    def manifest(self, stack: str) -> Manifest:
        return {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": APP_NAME,
                    "app.kubernetes.io/instance": stack,
                },
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/component",
                        "operator": "In",
                        "values": list(self.components),
                    }
                ],
            }
        }


@dataclass(frozen=True)
class Namespace:
    """Every pod of a namespace (empty name: of any namespace)."""

    name: object = ""  # a namespace name, or the platform's Output of one

    def manifest(self, stack: str) -> Manifest:
        if not self.name:
            return {"namespaceSelector": {}}
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.name}}}


@dataclass(frozen=True)
class Cidr:
    cidr: str

    def manifest(self, stack: str) -> Manifest:
        return {"ipBlock": {"cidr": self.cidr}}


Peer = Pods | Namespace | Cidr


@dataclass(frozen=True)
class Rule:
    """These peers, on these ports (protocol, port)."""

    peers: tuple[Peer, ...]
    ports: tuple[tuple[str, int], ...]

    @classmethod
    def tcp(cls, port: int, *peers: Peer) -> Rule:
        return cls(peers, (("TCP", port),))

    def manifest(self, stack: str, direction: str) -> Manifest:
        return {
            direction: [peer.manifest(stack) for peer in self.peers],
            "ports": [{"protocol": protocol, "port": port} for protocol, port in self.ports],
        }


@dataclass(frozen=True)
class Row:
    """One workload's policy: admitted from `ingress`, allowed to reach `egress`."""

    name: str
    component: Component
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]


def policy_table(scope: ServiceScope) -> tuple[Row, ...]:
    config = scope.config
    addons: Platform = scope.platform  # where the ingress controller, monitoring and KEDA run
    dns = Rule((Namespace("kube-system"),), (("UDP", DNS_PORT), ("TCP", DNS_PORT)))
    to_redis = Rule.tcp(REDIS_PORT, Pods(("redis",)))
    to_chroma = Rule.tcp(CHROMA_PORT, Pods(("chroma",)))
    to_flow = Rule.tcp(HTTPS_PORT, Cidr(ANYWHERE))
    # the OpenTelemetry collector's port, in any namespace or outside: only with otlpEndpoint
    otlp = (Rule.tcp(config.otlp_port, Namespace(), Cidr(ANYWHERE)),) if config.otlp_port else ()
    return (
        Row(
            API_DEPLOYMENT,
            "api",
            (
                Rule.tcp(DEFAULT_PORT, Namespace(addons.ingress_namespace)),
                # the blackbox exporter probes the ping; Prometheus scrapes /metrics on its port
                Rule(
                    (Namespace(addons.monitoring_namespace),),
                    (("TCP", DEFAULT_PORT), ("TCP", METRICS_PORT)),
                ),
            ),
            (dns, to_redis, to_chroma, to_flow, *otlp),
        ),
        Row(WORKER_DEPLOYMENT, "worker", (), (dns, to_redis, to_chroma, to_flow, *otlp)),
        Row(INGEST_WORKER_DEPLOYMENT, "ingest-worker", (), (dns, to_redis, to_chroma, *otlp)),
        Row(
            REDIS_NAME,
            "redis",
            (Rule.tcp(REDIS_PORT, Pods(APP_PODS), Namespace(addons.keda_namespace)),),
            (),
        ),
        Row(CHROMA_NAME, "chroma", (Rule.tcp(CHROMA_PORT, Pods(APP_PODS)),), ()),
    )


def network_policies(scope: ServiceScope) -> None:
    """Ingress and egress for every workload, admitting only the named peers."""
    stack = scope.config.stack
    for row in policy_table(scope):
        k8s.networking.v1.NetworkPolicy(
            f"{scope.name}-{row.component}-netpol",
            metadata=scope.meta(row.name, row.component),
            spec={
                "podSelector": {"matchLabels": selector_labels(stack, row.component)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [rule.manifest(stack, "from") for rule in row.ingress],
                "egress": [rule.manifest(stack, "to") for rule in row.egress],
            },
            opts=scope.opts(),
        )
