"""Operator commands used by people on call and by the workflows (see docs/runbook.md).

Each module is a command: ``python -m ops.<name> --help``. They share ``ops.summary`` (the
GitHub job summary writer), ``ops.kube`` (Kubernetes steps) and ``ops.secret_store`` (AWS
Secrets Manager and Azure Key Vault behind one interface).
"""
