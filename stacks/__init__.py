"""Pulumi components of the flowchat stacks, one module per concern (see DESIGN.md, Layout).

config (typed settings) -> kube (provider + namespace) -> secrets (Key Vault | Secrets Manager and
External Secrets) -> service (Redis, Chroma, API, worker, network policies) -> monitoring (Grafana).
config is split into config_types, config_workloads and config_cluster; service into pods, stores,
deployments, autoscaling, routing, disruption and network_policies.
`providers` makes every provider explicit. The offline tooling (render under mocks, preview,
policy run, first-run model, checkov skips) lives in `stacktools`; `stacks.render`,
`stacks.preview` and `stacks.policy_run` are aliases of those modules.
"""
