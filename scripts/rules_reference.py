#!/usr/bin/env python3
"""Generate docs/rules.md: every domain rule (R1-R37) and the tests that check it.

The rules come from the design's ``domain.md`` (``../shared/design/domain.md``
next to the repository, or the path given with ``--design``). When the design
folder is not there, the checked-in copy ``docs/rules-source.md`` is read
instead; whenever the design is found, that copy is refreshed too, so both
sources give the same page.

The tests are the test functions under ``tests/`` whose names carry rule ids:
``test_r13_...`` or ``..._r13_...`` (several ids may follow each other:
``test_r13_r19_...``). They are found with ``ast``, never by importing.

The output is deterministic (rules in the design's order, tests by file and
line), so ``tests/test_docs.py`` can compare the checked-in page with a fresh
run and fail when a test was added, renamed or removed without regenerating:

    python scripts/rules_reference.py            # write docs/rules.md
    python scripts/rules_reference.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DESIGN = REPO.parent / "shared" / "design" / "domain.md"
SOURCE_COPY = REPO / "docs" / "rules-source.md"
OUTPUT = REPO / "docs" / "rules.md"
TESTS = REPO / "tests"

NOT_COVERED = "**Not yet covered**: no test is named after this rule yet."
COPY_HEADER = (
    "<!-- A copy of the rules in ../shared/design/domain.md, kept by "
    "scripts/rules_reference.py so the rules reference builds without the design "
    "folder. Do not edit by hand: run the script where the design is present. -->\n\n"
)

# "- **R8 Levels and reasons.** body" or "- **R25 Removing a computer** from management..."
_RULE = re.compile(r"^- \*\*(R\d+[a-z]?) (.+?)\*\*(.*)$")
_SECTION = re.compile(r"^## (.+?)\s*$")
# a rule id inside a test name: after "test_" or another "_", before "_" or the end
_TEST_RULE = re.compile(r"(?:^test|_)r(\d+[a-z]?)(?=_|$)")


@dataclass
class Rule:
    rule_id: str
    title: str
    section: str
    text: str  # the rule's body, Markdown, dedented
    tests: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return self.rule_id.lower()


def parse_rules(markdown: str) -> list[Rule]:
    """The rules of a domain.md, in order: ``- **R8 Title.** body`` bullets."""
    rules: list[Rule] = []
    section = ""
    current: Rule | None = None
    body: list[str] = []

    def close() -> None:
        nonlocal current, body
        if current is not None:
            current.text = _blank_lines_around_lists(body)
            rules.append(current)
        current, body = None, []

    for line in markdown.splitlines():
        heading = _SECTION.match(line)
        rule = _RULE.match(line)
        if heading:
            close()
            section = heading.group(1)
        elif rule:
            close()
            title, rest = rule.group(2).strip(), rule.group(3)
            if title.endswith("."):  # "**R8 Levels and reasons.** A license's status..."
                title, first = title[:-1], rest.strip()
            else:  # "**R29 Every change is an event** with who did it..."
                first = title + rest
            current = Rule(rule.group(1), title, section, "")
            body = [first]
        elif current is not None and (line.startswith("  ") or not line.strip()):
            if not line.strip() and body and not body[-1].strip():
                continue
            body.append(line[2:] if line.startswith("  ") else "")
        else:
            close()
    close()
    return rules


def _blank_lines_around_lists(lines: list[str]) -> str:
    """Python-Markdown needs a blank line before a list and after it."""
    out: list[str] = []
    in_list = False
    for line in lines:
        if line.startswith("- "):
            if not in_list and out and out[-1].strip():
                out.append("")
            in_list = True
        elif line.strip() and not line.startswith(" ") and in_list:
            out.append("")
            in_list = False
        elif not line.strip():
            in_list = False
        out.append(line)
    return "\n".join(out).strip()


def rule_section(markdown: str) -> str:
    """The part of domain.md from its first rule section on (what the copy keeps)."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if _SECTION.match(line):
            return "\n".join(lines[i:]).rstrip() + "\n"
    return markdown


def rule_ids_in(name: str) -> list[str]:
    """``test_r13_r19_pool_ids_...`` -> ``["R13", "R19"]``."""
    return ["R" + m for m in _TEST_RULE.findall(name.lower())]


def _test_functions(tree: ast.Module) -> Iterable[tuple[int, str]]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("test"):
                yield node.lineno, node.name
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    item.name.startswith("test")
                ):
                    yield item.lineno, f"{node.name}::{item.name}"


def collect_tests(tests_dir: Path) -> dict[str, list[str]]:
    """Rule id -> ``tests/file.py::test_name`` entries, by file then line."""
    found: dict[str, list[str]] = {}
    for path in sorted(tests_dir.rglob("*.py"), key=lambda p: p.relative_to(tests_dir).as_posix()):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(tests_dir.parent).as_posix()
        for _, name in sorted(_test_functions(tree)):
            for rule_id in dict.fromkeys(rule_ids_in(name.rsplit("::", 1)[-1])):
                found.setdefault(rule_id, []).append(f"{where}::{name}")
    return found


def read_design(design: Path | None) -> tuple[str, Path]:
    """The domain rules' Markdown and where it came from."""
    if design is not None:
        path = design / "domain.md" if design.is_dir() else design
        if not path.is_file():
            raise SystemExit(f"rules_reference: no domain.md at {design}")
        return path.read_text(encoding="utf-8"), path
    for path in (DEFAULT_DESIGN, SOURCE_COPY):
        if path.is_file():
            return path.read_text(encoding="utf-8"), path
    raise SystemExit(
        f"rules_reference: neither {DEFAULT_DESIGN} nor {SOURCE_COPY} exists; pass --design"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rules: list[Rule], tests: dict[str, list[str]]) -> str:
    known = {r.rule_id for r in rules}
    for rule in rules:
        rule.tests = list(tests.get(rule.rule_id, []))
    covered = sum(1 for r in rules if r.tests)
    out: list[str] = [
        "<!-- Generated by scripts/rules_reference.py from the design's domain.md and the",
        "     test names in tests/. Do not edit: run `python scripts/rules_reference.py`. -->",
        "",
        "# Rules reference",
        "",
        "Every rule the library keeps, as the design states it, and the tests that",
        "check it. Tests name the rules they check (`test_r13_...`,",
        "`test_r13_r19_...`); this page is generated from those names, and",
        "`tests/test_docs.py` fails when it is out of date, so it cannot drift.",
        "",
        f"{covered} of {len(rules)} rules have tests named after them; the others are",
        'marked "not yet covered" until a test named after them exists.',
        "",
        "| Rule | Title | Tests |",
        "|---|---|---|",
    ]
    for rule in rules:
        count = str(len(rule.tests)) if rule.tests else "not yet covered"
        out.append(f"| [{rule.rule_id}](#{rule.anchor}) | {_cell(rule.title)} | {count} |")
    section = None
    for rule in rules:
        if rule.section != section:
            section = rule.section
            out += ["", f"## {section}"]
        out += ["", f"### {rule.rule_id} {rule.title} {{ #{rule.anchor} }}", "", rule.text, ""]
        if rule.tests:
            out.append(f"Checked by {len(rule.tests)} test(s):")
            out.append("")
            out += [f"- `{t}`" for t in rule.tests]
        else:
            out.append(NOT_COVERED)
    strays = sorted(set(tests) - known, key=lambda r: (int(re.sub(r"\D", "", r)), r))
    if strays:
        out += ["", "## Test names citing unknown rules", ""]
        for rule_id in strays:
            out += [f"- {rule_id}: " + ", ".join(f"`{t}`" for t in tests[rule_id])]
    return "\n".join(out).rstrip() + "\n"


def generate(design: Path | None = None, tests_dir: Path = TESTS) -> str:
    markdown, _ = read_design(design)
    return render(parse_rules(markdown), collect_tests(tests_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--design",
        type=Path,
        help="domain.md or the design folder (default ../shared/design, else docs/rules-source.md)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is stale")
    args = parser.parse_args(argv)

    markdown, origin = read_design(args.design)
    page = render(parse_rules(markdown), collect_tests(TESTS))
    copy = COPY_HEADER + rule_section(markdown)
    stale = []
    if not args.output.is_file() or args.output.read_text(encoding="utf-8") != page:
        stale.append(args.output)
    if origin != SOURCE_COPY and (
        not SOURCE_COPY.is_file() or SOURCE_COPY.read_text(encoding="utf-8") != copy
    ):
        stale.append(SOURCE_COPY)
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python scripts/rules_reference.py", file=sys.stderr)
        return 1 if stale else 0
    if SOURCE_COPY in stale:
        SOURCE_COPY.write_text(copy, encoding="utf-8", newline="\n")
    args.output.write_text(page, encoding="utf-8", newline="\n")
    print(f"wrote {args.output} from {origin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
