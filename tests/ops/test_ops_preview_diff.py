"""ops.preview_diff on two small preview JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops import preview_diff as pd

BASE = {
    "stack": "staging",
    "resources": [
        {"type": "kubernetes:apps/v1:Deployment", "name": "flowchat-api",
         "inputs": {"spec": {"replicas": 1, "template": {"image": "a:1"}}, "kind": "Deployment"}},
        {"type": "kubernetes:core/v1:ConfigMap", "name": "old", "inputs": {}},
        {"type": "kubernetes:core/v1:Secret", "name": "creds",
         "inputs": {"stringData": {"FLOW_AGENT_SECRET": "placeholder-1"}}},
    ],
    "violations": [
        {"policy": "pinned-images", "level": "advisory", "message": "m", "resource": "x"},
    ],
}  # fmt: skip
HEAD = {
    "stack": "staging",
    "resources": [
        {"type": "kubernetes:apps/v1:Deployment", "name": "flowchat-api",
         "inputs": {"spec": {"replicas": 2, "template": {"image": "a:1"}}, "kind": "Deployment"}},
        {"type": "kubernetes:core/v1:Service", "name": "new", "inputs": {}},
        {"type": "kubernetes:core/v1:Secret", "name": "creds",
         "inputs": {"stringData": {"FLOW_AGENT_SECRET": "placeholder-2"}}},
    ],
    "violations": [
        {"policy": "pinned-images", "level": "advisory", "message": "m", "resource": "x"},
        {"policy": "queue-threshold", "level": "mandatory", "message": "depth 50 > 20",
         "resource": "flowchat-alerts"},
    ],
}  # fmt: skip


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_diff_finds_added_removed_changed_and_new_violations() -> None:
    d = pd.diff(pd.Preview.model_validate(BASE), pd.Preview.model_validate(HEAD))
    assert d.added == [("kubernetes:core/v1:Service", "new")]
    assert d.removed == [("kubernetes:core/v1:ConfigMap", "old")]
    changed = {(t, n): keys for t, n, keys in d.changed}
    assert changed[("kubernetes:apps/v1:Deployment", "flowchat-api")] == ["spec.replicas"]
    assert changed[("kubernetes:core/v1:Secret", "creds")] == ["stringData.FLOW_AGENT_SECRET"]
    assert [(v.policy, new) for v, new in d.violations] == [
        ("pinned-images", False),
        ("queue-threshold", True),
    ]
    assert [v.policy for v in d.mandatory] == ["queue-threshold"]


def test_markdown_names_keys_but_never_values(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "comment.md"
    code = pd.main(
        [str(write(tmp_path, "b.json", BASE)), str(write(tmp_path, "h.json", HEAD)),
         "--output", str(out)]
    )  # fmt: skip
    text = out.read_text()
    assert code == 0
    assert "1 to add, 2 to change, 1 to remove" in text
    assert "| ~ change | kubernetes:apps/v1:Deployment | flowchat-api | `spec.replicas` |" in text
    assert "| new mandatory | queue-threshold | flowchat-alerts | depth 50 > 20 |" in text
    assert "placeholder-2" not in text and "placeholder-1" not in text
    assert text in capsys.readouterr().out + "\n"


def test_fail_on_mandatory(tmp_path: Path, capsys: Any) -> None:
    code = pd.main(
        [str(write(tmp_path, "b.json", BASE)), str(write(tmp_path, "h.json", HEAD)),
         "--fail-on-mandatory"]
    )  # fmt: skip
    assert code == 1
    assert "stack staging has mandatory policy violations: queue-threshold" in (
        capsys.readouterr().err
    )


def test_missing_base_counts_as_empty(tmp_path: Path) -> None:
    base = pd.load_preview(tmp_path / "absent.json", missing_ok=True)
    d = pd.diff(base, pd.Preview.model_validate(HEAD))
    assert len(d.added) == 3 and not d.removed and not d.changed
    assert all(new for _, new in d.violations)


def test_identical_previews_say_so(tmp_path: Path) -> None:
    same = pd.Preview.model_validate(BASE)
    text = pd.render(pd.diff(same, same))
    assert "No resource changes." in text


def test_missing_head_is_an_error(tmp_path: Path, capsys: Any) -> None:
    code = pd.main([str(tmp_path / "b.json"), str(tmp_path / "h.json")])
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_not_a_preview_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(pd.OpsError, match=r"not a stacks\.preview JSON"):
        pd.load_preview(write(tmp_path, "x.json", {"resources": [{"name": "no type"}]}))
