"""Settings kept with the home: what a later start uses, what the environment may change."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dockyard import home_settings
from dockyard.errors import DockyardError, HomeMismatch
from dockyard.settings import Settings


def test_the_first_start_keeps_its_settings_and_a_plain_one_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    kubeconfig = tmp_path / "kubeconfig"
    first = Settings(
        home=home,
        runtime="kubernetes",
        kubeconfig=kubeconfig,
        kube_storage_classes="fast=dockyard-fast",
        kube_image_loader="python3 load.py",
    )
    home_settings.keep(first, 0)
    path = home / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = json.loads(path.read_text())
    assert kept["runtime"] == "kubernetes" and kept["kubeconfig"] == str(kubeconfig)
    # a later start with nothing in its environment (the CLI's auto-start after a crash)
    later = home_settings.with_home(Settings(home=home))
    assert later.runtime == "kubernetes"
    assert later.kube_storage_classes == "fast=dockyard-fast"
    assert later.kube_image_loader == "python3 load.py"
    # the environment still wins, explicitly, and is kept from then on
    monkeypatch.setenv("DOCKYARD_KUBE_STORAGE_CLASSES", "fast=px-fast")
    changed = home_settings.with_home(Settings(home=home))
    assert changed.kube_storage_classes == "fast=px-fast" and changed.runtime == "kubernetes"
    home_settings.keep(changed, 3)
    assert json.loads(path.read_text())["kube_storage_classes"] == "fast=px-fast"


def test_a_start_that_would_move_a_homes_resources_to_another_runtime_is_refused(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home_settings.keep(Settings(home=home, runtime="kubernetes"), 0)
    with pytest.raises(HomeMismatch, match=r"runs its 4 resource.* on 'kubernetes'") as caught:
        home_settings.keep(Settings(home=home, runtime="local"), 4)
    assert "unset DOCKYARD_RUNTIME" in str(caught.value.hint)
    with pytest.raises(HomeMismatch, match="the resources of its store"):
        home_settings.keep(Settings(home=home, runtime="local"), -1)  # not countable now
    home_settings.keep(Settings(home=home, runtime="local"), 0)  # an empty home may change
    assert home_settings.stored(home)["runtime"] == "local"


def test_a_damaged_settings_file_is_an_error_never_ignored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text("{not json")
    with pytest.raises(DockyardError, match="not readable JSON"):
        home_settings.with_home(Settings(home=home))
    (home / "settings.json").write_text("[1, 2]")
    with pytest.raises(DockyardError, match="not a JSON object"):
        home_settings.stored(home)
