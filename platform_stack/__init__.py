"""The platform program (Pulumi project `flowchat-platform`): cluster, add-ons, DNS, issuers.

Not named `platform`: a top-level package of that name would shadow Python's stdlib module.
settings (typed config) -> cluster_aks | cluster_eks (the cluster, its OIDC issuer, its policy
engine and storage) -> addons (pinned Helm releases, ClusterIssuer, DNS record) -> outputs (the
values `stacks.platform_ref.PlatformOutputs` names, read by the service stack).
"""
