"""Answer evaluation (``python -m ops.evaluate``): the question set, asking the service,
scoring, and the report."""
