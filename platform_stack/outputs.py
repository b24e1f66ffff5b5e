"""The platform's outputs: what `stacks.platform_ref.PlatformOutputs` names, built in one place.

Class and namespace names are the ones the platform itself installs (AKS app routing, the EBS and
EFS CSI storage classes, the Helm releases of `platform_stack.addons`); the OIDC issuer and the
cluster name come from the cluster resource.
"""

from __future__ import annotations

from typing import Any

from platform_stack.settings import PlatformSettings
from stacks.platform_ref import OUTPUT_NAMES

CLUSTER_ISSUER = "letsencrypt"  # ACME production directory: a publicly trusted certificate
ACME_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
MONITORING_NAMESPACE = "monitoring"
KEDA_NAMESPACE = "keda"
PROMETHEUS_URL = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
PROBER_URL = "blackbox-exporter.monitoring.svc:9115"  # fullnameOverride of the exporter chart
# the Pushgateway the nightly answer evaluation pushes its scores to (evaluate.yml reaches it with
# `kubectl port-forward`: the address is in-cluster), scraped by the Prometheus above
PUSHGATEWAY_SERVICE = "pushgateway"  # fullnameOverride of the prometheus-pushgateway chart
PUSHGATEWAY_PORT = 9091
PUSHGATEWAY_URL = f"http://{PUSHGATEWAY_SERVICE}.{MONITORING_NAMESPACE}.svc:{PUSHGATEWAY_PORT}"

# per cloud: what the platform's cluster serves
CLOUD_VALUES = {
    "azure": {
        # the AKS application routing add-on (nginx-based) serves this IngressClass
        "ingressClass": "webapprouting.kubernetes.azure.com",
        "ingressNamespace": "app-routing-system",
        "storageClass": "managed-csi",  # Azure Disk CSI, built into AKS
        "sharedStorageClass": "azurefile-csi",  # Azure Files CSI (ReadWriteMany)
        "networkPolicyEngine": "azure",
    },
    "aws": {
        "ingressClass": "nginx",  # the ingress-nginx Helm release
        "ingressNamespace": "ingress-nginx",
        "storageClass": "gp3",  # EBS CSI add-on + the platform's StorageClass
        "sharedStorageClass": "efs-sc",  # EFS CSI add-on + file system + StorageClass
        "networkPolicyEngine": "vpc-cni",  # VPC CNI with enableNetworkPolicy
    },
}


def platform_outputs(
    settings: PlatformSettings, cluster_name: Any, oidc_issuer_url: Any, oidc_provider_arn: Any = ""
) -> dict[str, Any]:
    """Every output the service stack reads, by its exported (camelCase) name."""
    if settings.external is not None:
        return settings.external.model_dump(by_alias=True)
    values: dict[str, Any] = {
        **CLOUD_VALUES[settings.cloud],
        "clusterName": cluster_name,
        "clusterIssuer": CLUSTER_ISSUER,
        "hostname": settings.hostname,
        "oidcIssuerUrl": oidc_issuer_url,
        "oidcProviderArn": oidc_provider_arn,
        "prometheusUrl": PROMETHEUS_URL,
        "proberUrl": PROBER_URL,
        "pushgatewayUrl": PUSHGATEWAY_URL,
        "kedaNamespace": KEDA_NAMESPACE,
        "monitoringNamespace": MONITORING_NAMESPACE,
        "serviceNamespaces": list(settings.service_namespaces),  # platform_stack.namespaces
    }
    assert set(values) == set(OUTPUT_NAMES), set(values) ^ set(OUTPUT_NAMES)
    return values
