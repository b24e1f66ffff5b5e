"""Cluster add-ons as Helm releases pinned by chart version, and what they need around them:
External Secrets Operator, KEDA, kube-prometheus-stack with the blackbox exporter and the
Pushgateway (the nightly evaluation's scores, scraped through its ServiceMonitor), cert-manager
and its ClusterIssuer, the ingress controller (AKS: the app routing add-on instead), the EBS/EFS
storage classes and the DNS record of the service's hostname on EKS."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from platform_stack import outputs as out
from platform_stack.settings import PlatformSettings


@dataclass(frozen=True)
class Chart:
    release: str
    chart: str
    version: str  # pinned: an upgrade is a reviewed change of this line
    repo: str
    namespace: str
    values: dict
    # releases whose CRDs this one's objects use: installed first (Pulumi creates releases in
    # parallel, and Helm refuses a kind the cluster does not know yet)
    after: tuple[str, ...] = ()


CHARTS: tuple[Chart, ...] = (
    Chart(
        "external-secrets",
        "external-secrets",
        "0.19.2",
        "https://charts.external-secrets.io",
        "external-secrets",
        {"installCRDs": True},
    ),
    Chart("keda", "keda", "2.17.2", "https://kedacore.github.io/charts", out.KEDA_NAMESPACE, {}),
    Chart(
        "kube-prometheus-stack",
        "kube-prometheus-stack",
        "75.15.1",
        "https://prometheus-community.github.io/helm-charts",
        out.MONITORING_NAMESPACE,
        {"fullnameOverride": "kube-prometheus-stack"},
    ),
    Chart(
        "blackbox-exporter",
        "prometheus-blackbox-exporter",
        "11.1.1",
        "https://prometheus-community.github.io/helm-charts",
        out.MONITORING_NAMESPACE,
        {"fullnameOverride": "blackbox-exporter"},
    ),
    Chart(
        "pushgateway",
        "prometheus-pushgateway",
        "3.6.1",
        "https://prometheus-community.github.io/helm-charts",
        out.MONITORING_NAMESPACE,
        {
            "fullnameOverride": out.PUSHGATEWAY_SERVICE,
            "service": {"port": out.PUSHGATEWAY_PORT},
            "serviceMonitor": {
                "enabled": True,
                "namespace": out.MONITORING_NAMESPACE,
                # the pushed job and namespace labels are kept (the alerts select on them)
                "honorLabels": True,
                # kube-prometheus-stack's Prometheus selects ServiceMonitors by its release
                "additionalLabels": {"release": "kube-prometheus-stack"},
            },
        },
        after=("kube-prometheus-stack",),  # the ServiceMonitor CRD
    ),
    Chart(
        "cert-manager",
        "cert-manager",
        "v1.18.2",
        "https://charts.jetstack.io",
        "cert-manager",
        {"crds": {"enabled": True}},
    ),
)
INGRESS_NGINX = Chart(
    "ingress-nginx",
    "ingress-nginx",
    "4.13.0",
    "https://kubernetes.github.io/ingress-nginx",
    "ingress-nginx",
    {"controller": {"ingressClassResource": {"name": "nginx", "default": False}}},
)


@dataclass(frozen=True)
class AddonsArgs:
    settings: PlatformSettings
    kubernetes: k8s.Provider
    cloud: pulumi.ProviderResource
    file_system_id: pulumi.Input[str] | None = None  # EKS: the EFS file system of efs-sc
    zone_id: pulumi.Input[str] | None = None  # EKS: the Route 53 zone of the hostname


class Addons(pulumi.ComponentResource):
    def __init__(self, name: str, args: AddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:platform:Addons", name, None, opts)
        settings = args.settings
        kube = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)
        charts = CHARTS + ((INGRESS_NGINX,) if settings.cloud == "aws" else ())
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        releases = self.releases
        for chart in charts:  # CHARTS lists a release after those it waits for
            first = pulumi.ResourceOptions(depends_on=[releases[r] for r in chart.after])
            releases[chart.release] = self._release(
                name, chart, pulumi.ResourceOptions.merge(kube, first)
            )
        ingress_class = out.CLOUD_VALUES[settings.cloud]["ingressClass"]
        k8s.apiextensions.CustomResource(
            f"{name}-cluster-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": out.CLUSTER_ISSUER},
            spec={
                "acme": {
                    "server": out.ACME_SERVER,
                    "email": settings.acme_email,
                    "privateKeySecretRef": {"name": f"{out.CLUSTER_ISSUER}-account"},
                    "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class}}}],
                }
            },
            opts=pulumi.ResourceOptions.merge(
                kube, pulumi.ResourceOptions(depends_on=[releases["cert-manager"]])
            ),
        )
        if settings.cloud == "aws":
            self._eks_storage(name, args, kube)
            self._eks_dns(name, args, releases["ingress-nginx"])
        self.register_outputs({})

    @staticmethod
    def _release(name: str, chart: Chart, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            f"{name}-{chart.release}",
            name=chart.release,
            chart=chart.chart,
            version=chart.version,
            repository_opts={"repo": chart.repo},
            namespace=chart.namespace,
            create_namespace=True,
            atomic=True,
            values=chart.values,
            opts=opts,
        )

    @staticmethod
    def _eks_storage(name: str, args: AddonsArgs, kube: pulumi.ResourceOptions) -> None:
        values = out.CLOUD_VALUES["aws"]
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": values["storageClass"]},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=kube,
        )
        k8s.storage.v1.StorageClass(
            f"{name}-efs",
            metadata={"name": values["sharedStorageClass"]},
            provisioner="efs.csi.aws.com",
            parameters={
                "provisioningMode": "efs-ap",
                "fileSystemId": args.file_system_id or "",
                "directoryPerms": "700",
            },
            opts=kube,
        )

    def _eks_dns(self, name: str, args: AddonsArgs, controller: k8s.helm.v3.Release) -> None:
        """hostname -> the ingress controller's load balancer (a Route 53 CNAME)."""
        service = k8s.core.v1.Service.get(
            f"{name}-ingress-lb",
            "ingress-nginx/ingress-nginx-controller",
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=[controller]
            ),
        )
        target = service.status.apply(
            lambda s: (
                (s.load_balancer.ingress or [None])[0].hostname  # type: ignore[union-attr]
                if s and s.load_balancer and s.load_balancer.ingress
                else ""
            )
        )
        aws.route53.Record(
            f"{name}-hostname",
            zone_id=args.zone_id or "",
            name=args.settings.hostname,
            type="CNAME",
            ttl=300,
            records=[target],
            opts=pulumi.ResourceOptions(parent=self, provider=args.cloud),
        )
