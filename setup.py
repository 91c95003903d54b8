"""The packages of the hol distribution, computed so that nothing can be forgotten: hol's own packages and
every folder of ``conf/`` (each a Hydra config group, ``experiment`` included) as ``hol.conf.<group>``. A new
config group or subpackage ships without a second edit. Everything else is declared in ``pyproject.toml``."""
from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(include=["hol", "hol.*", "hydra_plugins", "hydra_plugins.*"])
CONFIG_GROUPS = [f"hol.conf.{group}" for group in find_namespace_packages("conf")]

setup(packages=[*CODE, "hol.conf", *CONFIG_GROUPS])
