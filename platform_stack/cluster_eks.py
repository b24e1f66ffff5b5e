"""EKS: the production cluster with IRSA (its IAM OIDC provider), the VPC CNI enforcing network
policies, the EBS and EFS CSI drivers (add-ons with IRSA roles), an EFS file system for the
ReadWriteMany class, and the Route 53 zone of the service's hostname."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from platform_stack.settings import PlatformSettings

AWS_POLICY = "arn:aws:iam::aws:policy/"


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


@dataclass(frozen=True)
class EksArgs:
    settings: PlatformSettings
    provider: aws.Provider


class EksCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    file_system_id: pulumi.Output[str]
    zone_id: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: EksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("flowchat:platform:EksCluster", name, None, opts)
        settings = args.settings
        cfg = settings.aws
        assert cfg is not None
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        routes = aws.ec2.RouteTable(
            f"{name}-routes",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            opts=child,
        )
        subnets = []
        for index, zone in enumerate(cfg.availability_zones):
            subnet = aws.ec2.Subnet(
                f"{name}-subnet-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=_subnet(cfg.vpc_cidr, index),
                map_public_ip_on_launch=True,
                tags={"kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-subnet-{zone}-routes",
                subnet_id=subnet.id,
                route_table_id=routes.id,
                opts=child,
            )
            subnets.append(subnet)
        cluster_role = aws.iam.Role(
            f"{name}-cluster-role", assume_role_policy=_trust("eks.amazonaws.com"), opts=child
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy",
            role=cluster_role.name,
            policy_arn=AWS_POLICY + "AmazonEKSClusterPolicy",
            opts=child,
        )
        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=settings.cluster_name,
            role_arn=cluster_role.arn,
            version=cfg.kubernetes_version,
            vpc_config={"subnet_ids": [s.id for s in subnets]},
            # access entries (bootstrap grants the deploy role one), no aws-auth ConfigMap
            access_config={"authentication_mode": "API"},
            opts=child,
        )
        node_role = aws.iam.Role(
            f"{name}-node-role", assume_role_policy=_trust("ec2.amazonaws.com"), opts=child
        )
        for policy in (
            "AmazonEKSWorkerNodePolicy",
            "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly",
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=node_role.name,
                policy_arn=AWS_POLICY + policy,
                opts=child,
            )
        aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=[s.id for s in subnets],
            instance_types=[cfg.instance_type],
            scaling_config={
                "desired_size": cfg.node_count,
                "min_size": cfg.node_count,
                "max_size": cfg.node_count + 2,
            },
            opts=child,
        )
        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)  # type: ignore[index]
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            opts=child,
        )

        def irsa_role(addon: str, account: str, policy: str) -> aws.iam.Role:
            host = issuer.apply(lambda url: url.removeprefix("https://"))
            subject = f"system:serviceaccount:kube-system:{account}"
            trust = pulumi.Output.all(oidc.arn, host).apply(
                lambda a: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": a[0]},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {
                                    "StringEquals": {
                                        f"{a[1]}:sub": subject,
                                        f"{a[1]}:aud": "sts.amazonaws.com",
                                    }
                                },
                            }
                        ],
                    }
                )
            )
            role = aws.iam.Role(f"{name}-{addon}-role", assume_role_policy=trust, opts=child)
            aws.iam.RolePolicyAttachment(
                f"{name}-{addon}-policy",
                role=role.name,
                policy_arn=AWS_POLICY + policy,
                opts=child,
            )
            return role

        ebs = irsa_role("ebs-csi", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy")
        efs = irsa_role("efs-csi", "efs-csi-controller-sa", "service-role/AmazonEFSCSIDriverPolicy")
        aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=cluster.name,
            addon_name="vpc-cni",
            # the VPC CNI's network policy agent: NetworkPolicy objects are enforced
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            opts=child,
        )
        aws.eks.Addon(
            f"{name}-ebs-csi",
            cluster_name=cluster.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs.arn,
            opts=child,
        )
        aws.eks.Addon(
            f"{name}-efs-csi",
            cluster_name=cluster.name,
            addon_name="aws-efs-csi-driver",
            service_account_role_arn=efs.arn,
            opts=child,
        )
        nfs = aws.ec2.SecurityGroup(
            f"{name}-efs-nfs",
            vpc_id=vpc.id,
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 2049,
                    "to_port": 2049,
                    "cidr_blocks": [cfg.vpc_cidr],
                }
            ],
            opts=child,
        )
        file_system = aws.efs.FileSystem(f"{name}-efs", encrypted=True, opts=child)
        for subnet, zone in zip(subnets, cfg.availability_zones, strict=True):
            aws.efs.MountTarget(
                f"{name}-efs-{zone}",
                file_system_id=file_system.id,
                subnet_id=subnet.id,
                security_groups=[nfs.id],
                opts=child,
            )
        zone_resource = aws.route53.Zone(f"{name}-zone", name=settings.dns_zone, opts=child)
        self.cluster_name = cluster.name
        self.oidc_issuer_url = issuer
        self.oidc_provider_arn = oidc.arn
        self.file_system_id = file_system.id
        self.zone_id = zone_resource.zone_id
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.endpoint, cluster.certificate_authority, cluster.name).apply(
                lambda a: _kubeconfig(a[0], _ca(a[1]), a[2], cfg.region)
            )
        )
        self.register_outputs({"clusterName": self.cluster_name, "oidcIssuerUrl": issuer})


def _subnet(cidr: str, index: int) -> str:
    """The index-th /20 of a /16."""
    first, second, *_ = cidr.split(".")
    return f"{first}.{second}.{index * 16}.0/20"


def _kubeconfig(endpoint: str, ca: str, cluster: str, region: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca}}
            ],
            "users": [
                {
                    "name": "aws",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster,
                                "--region",
                                region,
                            ],
                        }
                    },
                }
            ],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": "aws"}}],
            "current-context": cluster,
        }
    )


def _ca(authority: object) -> str:
    """The cluster's CA data (a typed output, or a dict before the provider fills it)."""
    if isinstance(authority, dict):
        return str(authority.get("data") or "")
    return str(getattr(authority, "data", "") or "")
