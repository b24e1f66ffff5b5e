"""ops/compose_secrets.py: the secret files compose mounts, written once, readable by the
containers, in a directory only their owner enters; the settings read them (SECRETS_DIR)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from ops.compose_secrets import COMPOSE_SECRETS, INGEST_WORKER_ENV, main


def test_every_secret_is_written_once_with_a_random_value(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "secrets"
    assert main(["--dir", str(folder)]) == 0
    values = {name: (folder / name).read_text() for name in COMPOSE_SECRETS}
    assert len(set(values.values())) == len(COMPOSE_SECRETS)
    assert all(len(v) >= 32 and "\n" not in v for v in values.values())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE((folder / n).stat().st_mode) for n in COMPOSE_SECRETS} == {0o644}
    env = (folder / INGEST_WORKER_ENV).read_text().splitlines()
    assert env == [f"{n}={values[n]}" for n in ("REDIS_PASSWORD", "CHROMA_TOKEN")]
    assert stat.S_IMODE((folder / INGEST_WORKER_ENV).stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert not any(v in printed for v in values.values())  # paths only, never a value

    (folder / "CHROMA_TOKEN").unlink()  # a second run keeps what exists, fills what is missing
    assert main(["--dir", str(folder)]) == 0
    again = {name: (folder / name).read_text() for name in COMPOSE_SECRETS}
    assert {k: v for k, v in again.items() if k != "CHROMA_TOKEN"} == {
        k: v for k, v in values.items() if k != "CHROMA_TOKEN"
    }
    assert again["CHROMA_TOKEN"] != values["CHROMA_TOKEN"]
    assert f"CHROMA_TOKEN={again['CHROMA_TOKEN']}" in (folder / INGEST_WORKER_ENV).read_text()


def test_the_settings_read_the_mounted_files(tmp_path: Path, monkeypatch) -> None:
    from app.core.settings import load_settings

    main(["--dir", str(tmp_path)])
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("CHROMA_TOKEN", raising=False)
    monkeypatch.delenv("KEY_ID_SECRET", raising=False)
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.REDIS_PASSWORD.get_secret_value() == (tmp_path / "REDIS_PASSWORD").read_text()
    assert settings.CHROMA_TOKEN.get_secret_value() == (tmp_path / "CHROMA_TOKEN").read_text()
    assert settings.KEY_ID_SECRET.get_secret_value() == (tmp_path / "KEY_ID_SECRET").read_text()
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-environment")  # the environment wins
    assert load_settings().REDIS_PASSWORD.get_secret_value() == "from-the-environment"


@pytest.mark.parametrize("name", COMPOSE_SECRETS)
def test_git_never_takes_a_secret_file(name: str) -> None:
    from app.core.settings import REPO_ROOT

    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"secrets/{name}"], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0
