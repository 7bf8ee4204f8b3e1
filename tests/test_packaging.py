"""The package as it is built: one import name, `lcstream`, from what the image's build stage copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.files import REPO, dockerfile_stages

EXPECTED_MODULES = [
    "lcstream/__init__.py",
    "lcstream/py.typed",
    "lcstream/config/settings.py",
    "lcstream/streams/keys.py",
    "lcstream/worker/engine/partition.py",
    "lcstream/worker/cli/app.py",
    "lcstream/worker/gateway/static/index.html",
]


def test_the_wheel_built_from_the_image_sources_holds_only_lcstream(tmp_path: Path) -> None:
    """What the Dockerfile's build stage copies builds a wheel whose one top-level name is `lcstream`,
    with the modules behind its links copied in (the repository keeps them at its root)."""
    context = tmp_path / "context"
    context.mkdir()
    build_stage = dockerfile_stages()[0]
    for copy in (i for i in build_stage if i.cmd == "COPY"):
        for source in copy.value[:-1]:
            target = context / source
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(REPO / source, target)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), "."], cwd=context, capture_output=True, text=True, timeout=180
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("lcstream_worker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {
        "lcstream"
    }
    assert [module for module in EXPECTED_MODULES if module not in names] == []
