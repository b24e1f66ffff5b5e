"""The bootstrap program (Pulumi project `flowchat-bootstrap`), run once with administrator rights.

It creates what the deploy workflows assume, with least privilege: the GitHub OIDC trust and the
deploy identities per cloud, ESC's own cloud identities and the ESC environments (values filled
into the committed deploy/esc definitions), Pulumi Cloud's OIDC issuer with its authorization
policy, and the GitHub environments with their protection rules, variables and secrets.
"""
