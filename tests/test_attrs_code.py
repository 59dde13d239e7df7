"""The bytecode cache of attrs' generated methods (issue 10: a fast cold start).

It must change nothing but the time: a class built from cached code behaves
as one attrs compiled afresh, a damaged cache file is ignored, and the key
leaves out the only part of attrs' scripts that changes between processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from attr import _make

from esmc_licensing import _attrs_code

PROBE = """
import attr._make as m
from esmc_licensing import _attrs_code
from esmc_licensing.domain.values import Policy
a, b = Policy(), Policy(expiring_days=10)
import attrs
print(m._compile_and_eval.__module__, a == Policy(), a != b, hash(a) == hash(Policy()),
      repr(b).startswith("Policy(expiring_days=10,"), attrs.evolve(b, expiring_days=30) == a,
      len({a, Policy(), b}))
"""


def _probe() -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_classes_built_from_the_cache_behave_as_compiled_afresh() -> None:
    first = _probe()  # writes the cache file if it was missing
    assert _attrs_code._cache_file().is_file()
    second = _probe()  # builds the classes from it
    assert first == second
    assert first.split() == ["esmc_licensing._attrs_code", "True", "True", "True", "True",
                             "True", "2"]


def test_the_key_leaves_out_the_salt_of_the_hash() -> None:
    script = "def __hash__(self):\n        return hash((\n                {},\n  self.a,))"
    keys = {_attrs_code._SALT.sub("hash((SALT,", script.format(n)) for n in (-75186, 4491298)}
    assert len(keys) == 1


def test_the_file_holds_one_entry_per_class_of_the_package() -> None:
    _probe()
    codes = _attrs_code._load(_attrs_code._cache_file())
    assert codes and all(" esmc_licensing." in name for name in codes)
    assert all(isinstance(script, str) and "SALT" not in name for name, (script, _) in
               codes.items())


def test_a_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    for content in (b"", b"\x00garbage", b"\xe9"):
        damaged = tmp_path / "x.code"
        damaged.write_bytes(content)
        assert _attrs_code._load(damaged) == {}
    assert _attrs_code._load(tmp_path / "missing.code") == {}


def test_only_this_packages_scripts_are_cached() -> None:
    namespace: dict[str, object] = {}
    _make._compile_and_eval("x = 1", namespace, None, "<attrs generated methods other.Thing>")
    assert namespace["x"] == 1  # compiled as attrs does, not kept
    assert " other." not in _attrs_code._OURS and _attrs_code._OURS == " esmc_licensing."
