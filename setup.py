"""Ships the top-level web/ and config/ folders inside the wheel as taskflowd/_data."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "taskflowd" / "_data"
        for folder in ("web", "config"):
            source = Path(__file__).parent / folder
            if source.is_dir():
                shutil.copytree(source, target / folder, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithData})
