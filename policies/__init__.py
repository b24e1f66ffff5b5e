"""The flowchat-runbook pulumi-policy pack (rules in policies/runbook/, entry in __main__.py)."""
