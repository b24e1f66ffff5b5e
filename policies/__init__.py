"""The flowchat-runbook pulumi-policy pack (rules in policies/rules.py, entry in __main__.py)."""
