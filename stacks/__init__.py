"""Pulumi components of the flowchat stacks, one module per concern (see DESIGN.md, Layout).

config (typed settings) -> kube (provider + namespace) -> secrets (Key Vault | Secrets Manager and
External Secrets) -> service (Redis, Chroma, API, worker, network policies) -> monitoring (Grafana).
`providers` makes every provider explicit. The offline tooling (render under mocks, preview,
policy run, first-run model, checkov skips) lives in `stacktools`; `stacks.render`,
`stacks.preview` and `stacks.policy_run` are aliases of those modules.
"""
