"""The flowchat Pulumi program: config, providers, namespace, secrets, service, monitoring."""

from __future__ import annotations

import pulumi

from stacks.config import load_config
from stacks.escalation import Escalation, EscalationArgs
from stacks.kube import KubeNamespace
from stacks.monitoring import Monitoring, MonitoringArgs
from stacks.platform_ref import resolve_platform
from stacks.providers import make_providers
from stacks.secrets import Secrets, SecretsArgs
from stacks.service import Service, ServiceArgs

config = load_config()
platform = resolve_platform(config.platform)  # the platform stack's outputs (or external)
providers = make_providers("flowchat", config)
kube = KubeNamespace("flowchat", config, providers.kubernetes, platform.service_namespaces)
secrets = Secrets("flowchat", SecretsArgs(config, kube, providers.cloud, platform))
service = Service(
    "flowchat",
    ServiceArgs(config, kube, platform, secrets.secret_name, (secrets.external_secret,)),
)
escalation = (
    Escalation(
        "flowchat",
        EscalationArgs(
            config.stack,
            config.escalation,
            # warnings: the chat contact point (alerting.chat if set, else the stack's own)
            (config.alerting.chat.contact_point if config.alerting.chat else None)
            or config.alerting.contact_point,
        ),
        opts=pulumi.ResourceOptions(providers=[providers.grafana]),
    )
    if config.escalation
    else None
)
Monitoring(
    "flowchat",
    MonitoringArgs(
        stack=config.stack,
        namespace=config.namespace,
        thresholds=config.thresholds,
        alerting=config.alerting,
        chroma_pvc_name=service.chroma_pvc_name,
        api_service_url=service.api_service_url,
        dashboard_uid=f"flowchat-{config.stack}",
        prometheus_datasource_uid=config.addons.prometheus_datasource_uid,
        prober_url=platform.prober_url,
        monitor_labels=dict(config.addons.monitor_labels),
        token_prices=config.token_prices,
        routes=escalation.routes if escalation else None,
    ),
    opts=pulumi.ResourceOptions(
        providers=[providers.kubernetes, providers.grafana], depends_on=[kube]
    ),
)
pulumi.export("namespace", config.namespace)
pulumi.export("apiServiceUrl", service.api_service_url)
pulumi.export("hostname", platform.hostname)
