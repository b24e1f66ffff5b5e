"""The flowchat Pulumi program: config -> namespace -> secrets -> service -> monitoring."""

from __future__ import annotations

import pulumi

from stacks.config import load_config
from stacks.kube import KubeNamespace
from stacks.monitoring import Monitoring, MonitoringArgs
from stacks.secrets import Secrets, SecretsArgs
from stacks.service import Service, ServiceArgs

config = load_config()
kube = KubeNamespace("flowchat", config)
secrets = Secrets("flowchat", SecretsArgs(config, kube))
service = Service("flowchat", ServiceArgs(config, kube, secrets.secret_name, (secrets,)))
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
    ),
    opts=pulumi.ResourceOptions(
        providers=[kube.provider] if kube.provider else [], depends_on=[kube.namespace]
    ),
)
pulumi.export("namespace", config.namespace)
pulumi.export("apiServiceUrl", service.api_service_url)
pulumi.export("hostname", config.hostname)
