"""Pulumi components of the flowchat stacks, one module per concern (see DESIGN.md, Layout).

config (typed settings) -> kube (provider + namespace) -> secrets (Key Vault | Secrets Manager and
External Secrets) -> service (Redis, Chroma, API, worker, network policies) -> monitoring (Grafana).
`render` runs the program offline under Pulumi mocks; `preview` is its command line.
"""
