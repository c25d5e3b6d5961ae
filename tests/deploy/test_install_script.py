"""`make install` (scripts/install.sh) ends without pip's red "ERROR: ... requires numpy<2" for the packages it
installs with --no-deps on purpose, and says once, plainly, why `pip check` lists them."""

from __future__ import annotations

import re
import subprocess

from tests.support import REPO_ROOT

SCRIPT = (REPO_ROOT / "scripts" / "install.sh").read_text()


def test_installs_after_the_no_deps_packages_do_not_warn_about_their_pins() -> None:
    lines = [line for line in SCRIPT.splitlines() if not line.lstrip().startswith("#")]
    no_deps_at = next(i for i, line in enumerate(lines) if "--no-deps" in line)
    later_installs = re.findall(r'"\$\{pip\[@\]\}"[^;]*', "\n".join(lines[no_deps_at + 1 :]))
    assert later_installs, "expected hearth itself to be installed after the --no-deps packages"
    assert all("--no-warn-conflicts" in install for install in later_installs), later_installs


def test_the_expected_pip_check_findings_are_explained_once() -> None:
    notes = re.findall(r"^echo \"note: .*numpy<2", SCRIPT, flags=re.MULTILINE)
    assert len(notes) == 1
    assert subprocess.run(["bash", "-n", str(REPO_ROOT / "scripts" / "install.sh")], check=False).returncode == 0
