"""A wheel built from the checkout works outside it: the bundled configs come along as package data.

The wheel goes into a fresh venv in a temporary folder; its dependencies are the ones already installed here (a
`.pth` line points at this venv's site-packages, whose editable hearth is *not* activated that way), so the test
downloads nothing and proves that `agent`, `robots` and `hearth_configs` are imported from the installed wheel.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.support import REPO_ROOT

SOURCES = ("agent", "policy", "robots", "ui", "hearth_wire", "configs")


def _declared_packages() -> set[str]:
    return set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_directory_is_declared() -> None:
    """pyproject lists packages by hand (configs/ is mapped to hearth_configs): a new subpackage must be added."""
    found = {"hearth_configs"}
    for top in SOURCES[:-1]:
        found |= {".".join(p.parent.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / top).rglob("__init__.py")}
    assert _declared_packages() == found


def test_the_images_copy_every_source_folder_the_packages_come_from() -> None:
    """scripts/install.sh installs the checkout: an image without one of these folders fails at `pip install`."""
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        copied = (REPO_ROOT / dockerfile).read_text().splitlines()
        for folder in SOURCES:
            assert f"COPY {folder} {folder}" in copied, (dockerfile, folder)


def test_wheel_installs_outside_the_checkout_and_finds_its_configs(tmp_path: Path) -> None:
    source = tmp_path / "src"  # build from a copy: the build leaves build/ and *.egg-info behind
    for name in SOURCES:
        shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True, timeout=300)
    (wheel,) = wheels.glob("hearth-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    data = subprocess.check_output(["git", "ls-files", *SOURCES[:-1]], cwd=REPO_ROOT, text=True).split()
    for name in (n for n in data if not n.endswith(".py")):  # tokenizer assets, console pages, ...
        assert name in packaged, f"{name} is not in the wheel: add it to [tool.setuptools.package-data]"
    assert "hearth_configs/deployments/local.yaml" in packaged

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    venv_site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                             text=True).strip())  # fmt: skip
    (venv_site / "deps-from-checkout-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([*pip, "--python", python, "install", "--no-deps", wheel], check=True, timeout=300)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.check_output(
        [python, "-c", "import agent, robots, hearth_configs; print(agent.__file__, hearth_configs.__file__)"],
        cwd=outside, text=True,
    )  # fmt: skip
    assert all(Path(p).is_relative_to(venv_site) for p in where.split()), where
    shown = subprocess.run(
        [venv / "bin" / "hearth", "config", "show", "local"], cwd=outside, capture_output=True, text=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "name: local" in shown.stdout and "kind: sim-kitchen" in shown.stdout
    robot = subprocess.run(
        [python, "-c", "from robots.config import load_robot_config; print(load_robot_config('sim-kitchen').kind)"],
        cwd=outside, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert robot.stdout.strip() == "sim-kitchen", robot.stderr[-3000:]
