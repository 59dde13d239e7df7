"""The testing kit as products meet it: a plugin that costs nothing until used,
a factory fixture that works under Hypothesis' ``@given``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout


def test_the_plugin_imports_nothing_of_the_library_until_a_fixture_is_used() -> None:
    loaded = _python(
        "import sys, esmc_licensing.testing.plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith(('esmc_licensing.', 'eventsourcing',"
        " 'hypothesis', 'httpx', 'cryptography'))))"
    )
    assert loaded.strip() == "['esmc_licensing.testing', 'esmc_licensing.testing.plugin']"


def test_r30_the_world_factory_works_under_given_with_hypothesis_health_checks(
    tmp_path: Path,
) -> None:
    """Run in a pytest of its own, with Hypothesis' default profile (this
    suite's profiles suppress the function-scoped-fixture health check)."""
    (tmp_path / "test_product.py").write_text(
        textwrap.dedent(
            """
            from hypothesis import given, settings, strategies as st

            @settings(max_examples=5, deadline=None)
            @given(n=st.integers(min_value=1, max_value=3))
            def test_fresh_world_per_example(licensing_world, n):
                w = licensing_world()
                for i in range(n):
                    w.app.create_group(w.app.administrator, f"G{i}")
                assert len(w.app.groups(w.app.administrator)) == n + 1

            def test_plain_fixtures(licensing_app, licensing_vendor, licensing_clock):
                assert licensing_app.licenses(licensing_app.administrator) == []
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(tmp_path / "test_product.py")],
        cwd=tmp_path, capture_output=True, text=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
