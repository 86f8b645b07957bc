"""Fail when the venv lacks a requirement of pyproject.toml (run with the venv's python).

`make install` installs requirements.lock, then the project with --no-deps: a dependency added
to or re-bounded in pyproject.toml without `make lock` would otherwise go unnoticed.
"""

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

EXTRAS = ("dev", "postgres")

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
wanted = list(project["dependencies"])
for extra in EXTRAS:
    wanted += project["optional-dependencies"][extra]
problems = []
for line in wanted:
    requirement = Requirement(line)
    if requirement.marker and not requirement.marker.evaluate():
        continue
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        problems.append(f"{requirement} is not installed")
        continue
    if not requirement.specifier.contains(installed, prereleases=True):
        problems.append(f"{requirement} but {installed} is installed")
if problems:
    sys.exit(
        "requirements.lock does not cover pyproject.toml (run `make lock`): " + "; ".join(problems)
    )
