"""The pack's rules, one module per runbook area, and `thresholds` (the shared numbers).

Imports nothing here: `app.contracts` imports `policies.runbook.thresholds` in the service image,
where pulumi-policy is not installed.
"""
