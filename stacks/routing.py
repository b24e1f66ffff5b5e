"""How traffic and scrapes reach the API: its Service, the ServiceMonitor and the Ingress.

Metrics: a Prometheus Operator `ServiceMonitor` (`monitoring.coreos.com/v1`, named like the API)
selects the API Service by its labels and scrapes its `metrics` port (`METRICS_PORT`, which the
Ingress does not route) at `/metrics` every 30 s. A
Prometheus whose `serviceMonitorSelector` or `serviceMonitorNamespaceSelector` is narrower (e.g.
`release: prometheus`) must be widened to match, or nothing is scraped (see docs/runbook.md).
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from app.contracts import API_DEPLOYMENT, APP_NAME, DEFAULT_PORT, METRICS_PATH, METRICS_PORT
from stacks.kube import labels, selector_labels
from stacks.pods import METRICS_PORT_NAME, Manifest, ServiceScope

API_PORT_NAME = "http"  # the API Service's port (what the Ingress routes)
METRICS_SCRAPE_INTERVAL = "30s"
# what the Ingress routes: the chat and document API, the status banner, the OpenAI-compatible
# API, the page and its assets; never /api/health/* (probes reach the Service in the cluster)
INGRESS_PATHS = (
    ("/api/chat", "Prefix"),
    ("/api/documents", "Prefix"),
    ("/api/status", "Exact"),
    ("/v1", "Prefix"),
    ("/", "Exact"),
    ("/static", "Prefix"),
)


def api_service(scope: ServiceScope) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{scope.name}-api-service",
        metadata=scope.meta(API_DEPLOYMENT, "api"),
        spec={
            "type": "ClusterIP",
            "selector": selector_labels(scope.config.stack, "api"),
            "ports": [
                {"name": API_PORT_NAME, "port": DEFAULT_PORT, "targetPort": "http"},
                {"name": METRICS_PORT_NAME, "port": METRICS_PORT, "targetPort": METRICS_PORT_NAME},
            ],
        },
        opts=scope.opts(),
    )


def service_monitor(scope: ServiceScope, service: k8s.core.v1.Service) -> None:
    """Prometheus Operator scrapes /metrics of the API Service (the pod annotations serve
    annotation-based Prometheus setups; the Operator ignores them)."""
    config = scope.config
    k8s.apiextensions.CustomResource(
        f"{scope.name}-api-metrics",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={
            **scope.meta(API_DEPLOYMENT, "api"),
            "labels": {
                **labels(config.stack, "api"),
                **config.addons.monitor_labels,  # what the cluster's Prometheus selects
            },
        },
        spec={
            "selector": {"matchLabels": selector_labels(config.stack, "api")},
            "namespaceSelector": {"matchNames": [config.namespace]},
            "endpoints": [
                {
                    "port": METRICS_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": METRICS_SCRAPE_INTERVAL,
                    "scheme": "http",
                }
            ],
        },
        opts=scope.opts(service),
    )


def ingress(scope: ServiceScope) -> None:
    platform = scope.platform
    # uploads; ingress-nginx and AKS app routing (nginx-based) read it, other controllers ignore it
    annotations: dict[str, object] = {"nginx.ingress.kubernetes.io/proxy-body-size": "25m"}
    backend = {"service": {"name": API_DEPLOYMENT, "port": {"number": DEFAULT_PORT}}}
    spec: Manifest = {
        "ingressClassName": platform.ingress_class,
        "rules": [
            {
                "host": platform.hostname,
                "http": {
                    # never /metrics, /docs, /openapi.json: Prometheus scrapes the Service
                    "paths": [
                        {"path": path, "pathType": kind, "backend": backend}
                        for path, kind in INGRESS_PATHS
                    ]
                },
            }
        ],
        # a certificate from the platform's ClusterIssuer (a publicly trusted CA: ops.smoke
        # verifies TLS) for the platform's hostname
        "tls": [{"hosts": [platform.hostname], "secretName": f"{APP_NAME}-tls"}],
    }
    annotations["cert-manager.io/cluster-issuer"] = platform.cluster_issuer
    k8s.networking.v1.Ingress(
        f"{scope.name}-api-ingress",
        metadata=scope.meta(API_DEPLOYMENT, "api", annotations=annotations),
        spec=spec,
        opts=scope.opts(),
    )
