"""The documentation cannot drift: the rules reference is regenerated and compared.

``docs/rules.md`` is written by ``scripts/rules_reference.py`` from the design's
rules and the rule ids in test names. When a test is added, renamed or removed
(or a rule changes) without regenerating the page, these tests fail and say
which command to run.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "rules_reference.py"
REGENERATE = "run `python scripts/rules_reference.py` and commit docs/rules.md"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rules_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("rules_reference", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


def test_rules_reference_is_current(script: ModuleType) -> None:
    checked_in = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert checked_in == script.generate(), f"docs/rules.md is out of date: {REGENERATE}"


def test_rules_source_copy_matches_the_design(script: ModuleType) -> None:
    """The checked-in copy (used where ../shared/design is absent) says what the design says."""
    if not script.DEFAULT_DESIGN.is_file():
        pytest.skip(f"the design folder is not at {script.DEFAULT_DESIGN.parent}")
    design = script.parse_rules(script.DEFAULT_DESIGN.read_text(encoding="utf-8"))
    copy = script.parse_rules(script.SOURCE_COPY.read_text(encoding="utf-8"))
    assert design == copy, f"docs/rules-source.md is out of date: {REGENERATE}"


def test_without_the_design_folder_the_checked_in_copy_gives_the_same_page(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(script, "DEFAULT_DESIGN", tmp_path / "no-design" / "domain.md")
    assert script.read_design(None)[1] == script.SOURCE_COPY
    checked_in = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert checked_in == script.generate(), f"docs/rules.md is out of date: {REGENERATE}"


def test_every_rule_r1_to_r37_is_in_the_reference(script: ModuleType) -> None:
    markdown, _ = script.read_design(None)
    ids = [rule.rule_id for rule in script.parse_rules(markdown)]
    assert len(ids) == len(set(ids))
    numbered = {int(re.sub(r"\D", "", i)) for i in ids}
    assert numbered == set(range(1, 38))
    page = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    for rule_id in ids:
        assert f"### {rule_id} " in page


def test_every_rule_lists_tests_or_says_not_yet_covered() -> None:
    page = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    sections = re.split(r"^### ", page, flags=re.M)[1:]
    assert len(sections) >= 31
    for section in sections:
        rule_id = section.split(" ", 1)[0]
        listed = re.findall(r"^- `tests/[^`]+::test\w*`$", section, flags=re.M)
        assert listed or "**Not yet covered**" in section, f"{rule_id}: no tests, no marker"
        assert not (listed and "**Not yet covered**" in section), rule_id


def test_every_listed_test_exists_and_names_its_rule(script: ModuleType) -> None:
    page = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    for section in re.split(r"^### ", page, flags=re.M)[1:]:
        rule_id = section.split(" ", 1)[0]
        for path, name in re.findall(r"^- `(tests/[^`:]+)::([\w:]+)`$", section, flags=re.M):
            source = (REPO / path).read_text(encoding="utf-8")
            function = name.rsplit("::", 1)[-1]
            assert f"def {function}(" in source, f"{path}::{name} is listed but not there"
            assert rule_id in script.rule_ids_in(function)


@pytest.mark.parametrize(
    ("name", "ids"),
    [
        ("test_r13_move", ["R13"]),
        ("test_r13_r19_pool_ids_must_be_a_list", ["R13", "R19"]),
        ("test_r8a_saved_filters", ["R8a"]),
        ("test_status_r8_boundaries", ["R8"]),
        ("test_remove_r19", ["R19"]),
        ("test_error_rate", []),
        ("test_r2d2_is_not_a_rule", []),
        ("test_readme_example", []),
    ],
)
def test_rule_ids_are_read_from_test_names(script: ModuleType, name: str, ids: list[str]) -> None:
    assert script.rule_ids_in(name) == ids


def test_generator_is_deterministic(script: ModuleType) -> None:
    assert script.generate() == script.generate()


def test_parser_reads_bold_titles_with_and_without_a_period(script: ModuleType) -> None:
    rules = script.parse_rules(
        "## Section\n\n"
        "- **R1 Identity.** A license is identified\n  by its Public ID.\n"
        "- **R25 Removing a computer** from management offers\n  deactivation.\n"
        "  - a sub-point\n  After the list.\n\n"
        "- **R8a Filter.** Filters.\n"
    )
    assert [(r.rule_id, r.title, r.section) for r in rules] == [
        ("R1", "Identity", "Section"),
        ("R25", "Removing a computer", "Section"),
        ("R8a", "Filter", "Section"),
    ]
    assert rules[0].text == "A license is identified\nby its Public ID."
    assert rules[1].text == (
        "Removing a computer from management offers\ndeactivation.\n\n- a sub-point\n\n"
        "After the list."
    )


def test_mkdocs_nav_pages_exist() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:") :]
    pages = re.findall(r"[-:]\s+([\w/.-]+\.md)\s*$", nav, flags=re.M)
    for expected in ("index.md", "tutorial.md", "embedding.md", "architecture.md", "rules.md"):
        assert expected in pages
    for page in pages:
        assert (REPO / "docs" / page).is_file(), page


@pytest.mark.parametrize("page", ["tutorial.md", "embedding.md", "testing.md", "alerts.md"])
def test_python_examples_in_the_docs_run(
    page: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A page's ```python blocks run one after the other and print what they say."""
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    assert blocks, f"docs/{page} has no python examples"
    monkeypatch.chdir(tmp_path)  # the examples write SQLite files
    namespace: dict[str, object] = {"__name__": f"docs_{page[:-3]}"}
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), namespace)
    printed = capsys.readouterr().out
    for promised in re.findall(r"print\(.*\)\s*#\s*(.+)", "\n".join(blocks)):
        assert promised.strip() in printed, f"docs/{page} promises {promised.strip()!r}"
