"""The installed environment has what users run: torchvision next to torch, nnictl, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_torchvision_imports_beside_torch():
    result = subprocess.run([sys.executable, "-c", "import torch, torchvision; print(torchvision.__version__)"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_nnictl_runs():
    """nnictl imports pkg_resources: setuptools<81 must be installed."""
    nnictl = Path(sys.executable).with_name("nnictl")
    result = subprocess.run([str(nnictl), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3.0" in result.stdout


def test_cli_lists_presets():
    script = Path(sys.executable).with_name("nni-hwnas")
    result = subprocess.run([str(script), "spaces"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "conv_net_small" in result.stdout and "medmnist_cnn" in result.stdout
