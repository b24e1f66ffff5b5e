"""stacks/monitoring.py against rules the installed Grafana provider states but mocks ignore.

The provider's own schema text (the docstring of `RuleGroupRuleNotificationSettingsArgsDict`,
generated from the Terraform schema) says which labels a rule's `group_by` must include; Grafana
refuses the rule group otherwise (issue 19, item 6).
"""

from __future__ import annotations

import ast
import inspect
import re

from pulumiverse_grafana.alerting import _inputs
from test_monitoring_component import by_type, render

from stacks.alerts import Thresholds


def _schema_text(cls_name: str, field: str) -> str:
    """The docstring that follows `field` in the provider's TypedDict `cls_name`."""
    tree = ast.parse(inspect.getsource(_inputs))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name]
    body = cls.body
    for i, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == field:
            return str(body[i + 1].value.value)  # type: ignore[attr-defined]
    raise AssertionError(f"{cls_name}.{field} not in the installed provider")


def required_group_by_labels() -> set[str]:
    text = _schema_text("RuleGroupRuleNotificationSettingsArgsDict", "group_bies")
    match = re.search(r"requires labels ((?:'[^']+'(?:, | and )?)+)", text)
    assert match, f"the provider no longer states required labels: {text}"
    return set(re.findall(r"'([^']+)'", match.group(1)))


def test_the_provider_schema_names_the_required_labels() -> None:
    assert required_group_by_labels() >= {"alertname", "grafana_folder"}


def test_every_routed_rule_groups_by_the_labels_the_provider_requires() -> None:
    required = required_group_by_labels()
    groups = by_type(render(Thresholds()), ":RuleGroup")
    rules = [rule for g in groups for rule in g.inputs["rules"]]
    assert rules
    for rule in rules:
        group_by = rule["notificationSettings"]["groupBies"]
        assert required <= set(group_by), (rule["name"], group_by)
