"""The user documentation (README.md and docs/*.md) checked against the repository and the program:
links and anchors resolve, the command-line page matches the Typer app both ways, the README's example
commands parse, the README stays short, and no page carries internal run names or issue numbers.

No mocks: real files, the real Typer app (`typer.main.get_command(dfer_edge.cli.app)`).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250
EXPERIMENTS = REPO / "convert" / "EXPERIMENTS.md"


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def load_generator():
    spec = importlib.util.spec_from_file_location("make_cli", DOCS / "make_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def group():
    import typer.main

    from dfer_edge.cli import app

    return typer.main.get_command(app)


# ---- reading Markdown ---------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~)")


def split_code(text: str) -> tuple[list[str], list[list[str]]]:
    """(prose lines with code blocks blanked, the code blocks' lines)."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def without_inline_code(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than hyphens and
    underscores dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file, duplicates numbered -1, -2 as GitHub does."""
    prose, _ = split_code(path.read_text())
    seen: dict[str, int] = {}
    out = set()
    for line in prose:
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def links(path: Path) -> list[tuple[int, str]]:
    prose, _ = split_code(path.read_text())
    found = []
    for i, line in enumerate(prose, 1):
        line = without_inline_code(line)
        found += [(i, m.group(1)) for m in LINK.finditer(line)]
        found += [(i, m.group(1)) for m in HTML_LINK.finditer(line)]
    return found


# ---- (a) links and anchors ----------------------------------------------------------------------------

def test_every_page_exists_and_has_links():
    assert (DOCS / "cli.md").exists(), "docs/cli.md is missing: run `make docs`"
    for page in PAGES:
        assert links(page), f"{rel(page)} links nowhere: a page should lead on"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_and_anchors_resolve(page):
    problems = []
    for line, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            problems.append(f"{rel(page)}:{line}: {target}: {file_part} does not exist")
            continue
        try:
            dest.relative_to(REPO)
        except ValueError:
            problems.append(f"{rel(page)}:{line}: {target}: points outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{rel(page)}:{line}: {target}: no heading with anchor #{anchor} in {rel(dest)} "
                            f"(has: {', '.join(sorted(anchors(dest)))})")
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_slug_follows_github():
    assert slug("Checked on arm64 (emulated)") == "checked-on-arm64-emulated"
    assert slug("Video and cameras: `watch`") == "video-and-cameras-watch"
    assert slug("### `dfer-edge predict`".lstrip("# ")) == "dfer-edge-predict"
    assert slug("Intended use, and what it must not be used for") == "intended-use-and-what-it-must-not-be-used-for"


def test_readme_reaches_every_page_in_one_click():
    linked = {(REPO / t.partition("#")[0]).resolve() for _, t in links(REPO / "README.md")
              if not re.match(r"^[a-z]+:", t)}
    missing = [rel(p) for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and p.resolve() not in linked]
    assert not missing, f"README.md does not link to: {', '.join(missing)}"


def test_readme_picture_is_the_products_and_small():
    image = DOCS / "img" / "astronaut-annotated.jpg"
    assert image.exists(), "docs/img/astronaut-annotated.jpg is missing: run `make docs`"
    assert image.stat().st_size < 150 * 1024, f"{rel(image)} is {image.stat().st_size} bytes: keep it under 150 KB"
    assert "docs/img/astronaut-annotated.jpg" in (REPO / "README.md").read_text()
    assert "docs/img/astronaut-annotated.jpg" in (REPO / "Makefile").read_text(), "make docs must draw it"


# ---- (b) the command-line page against the app, both ways -----------------------------------------------

def test_cli_page_is_generated_from_the_app():
    gen = load_generator()
    want = gen.render()
    have = (DOCS / "cli.md").read_text()
    assert have == want, "docs/cli.md is out of date with dfer_edge/cli.py or docs/cli.md.in: run `make docs`"


def verb_sections(text: str) -> dict[str, str]:
    """The reference's sections, by verb, plus the shared-options section under the key ''."""
    parts = re.split(r"^### ", text, flags=re.M)
    out = {}
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        m = re.fullmatch(r"`dfer-edge (\S+)`", title.strip())
        if m:
            out[m.group(1)] = body
        elif title.strip() == "Options shared by several verbs":
            out[""] = body
    return out


def test_every_option_of_every_verb_is_on_the_cli_page(group):
    text = (DOCS / "cli.md").read_text()
    sections = verb_sections(text)
    shared_rows = [row for row in sections.get("", "").splitlines() if row.startswith("| `")]
    missing = []
    for name, cmd in group.commands.items():
        if name not in sections:
            missing.append(f"verb {name}: no section '### `dfer-edge {name}`'")
            continue
        for p in cmd.params:
            for opt in [o for o in [*p.opts, *p.secondary_opts] if o.startswith("-")]:
                in_own = f"`{opt}`" in sections[name].split("Also the [shared options]")[0]
                in_shared = any(f"`{opt}`" in row and re.search(rf"\b{re.escape(name)}\b", row.split("|")[4])
                                for row in shared_rows)
                if not (in_own or in_shared):
                    missing.append(f"{name} {opt}")
    assert not missing, "options of the program missing from docs/cli.md (run `make docs`):\n" + "\n".join(missing)


OPTION_RE = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def test_every_option_the_cli_page_names_exists(group):
    every = {o for cmd in group.commands.values() for p in cmd.params for o in [*p.opts, *p.secondary_opts]}
    every |= {"--help"}
    text = (DOCS / "cli.md").read_text()
    named = set()
    for span in re.findall(r"`([^`]+)`", text):
        first = span.split()[0] if span.split() else ""
        # an option by itself (`--json`), or a dfer-edge command line (`dfer-edge watch 0 --jsonl`)
        if OPTION_RE.fullmatch(first) or span.startswith("dfer-edge "):
            named |= set(OPTION_RE.findall(span))
    for block in split_code(text)[1]:
        for line in block:
            if line.strip().startswith("dfer-edge "):
                named |= set(OPTION_RE.findall(line.split("#")[0]))
    unknown = sorted(named - every)
    assert named, "no option found on docs/cli.md: the page or this test is broken"
    assert not unknown, f"docs/cli.md names options the program does not have: {', '.join(unknown)}"
    sections = verb_sections(text)
    for name, cmd in group.commands.items():  # within a verb's own table, only that verb's options
        own = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]}
        table = [r for r in sections.get(name, "").splitlines() if r.startswith("| `")]
        wrong = sorted({o for r in table for o in OPTION_RE.findall(r.split("|")[1])} - own)
        assert not wrong, f"docs/cli.md lists {', '.join(wrong)} under {name}, which does not take them"


# ---- (c) the README's and the pages' example commands parse --------------------------------------------

def example_commands(page: Path) -> list[tuple[int, list[str]]]:
    """`dfer-edge VERB ...` lines in the page's code blocks (also `~/dfer/bin/dfer-edge`, `ExecStart=`),
    as argument lists: comments, pipes and redirections cut off."""
    found = []
    text = page.read_text()
    prose, blocks = split_code(text)
    lines = [line for block in blocks for line in block]
    for line in lines:
        s = line.strip()
        if s.startswith("ExecStart="):
            s = s[len("ExecStart="):]
        try:
            words = shlex.split(s, comments=True)
        except ValueError:
            continue
        if not words or not (words[0] == "dfer-edge" or words[0].endswith("/dfer-edge")) or "[OPTIONS]" in words:
            continue  # not a command, or a usage synopsis (`dfer-edge predict [OPTIONS] PATHS...`)
        for stop in ("|", ">", ">>", "2>", "&&", ";"):
            if stop in words:
                words = words[:words.index(stop)]
        found.append((lines.index(line) + 1, words[1:]))
    return found


def parse(group, args: list[str]) -> None:
    """Parse one command line with the program's own parser, without running it."""
    verb, rest = args[0], args[1:]
    cmd = group.commands.get(verb)
    assert cmd is not None, f"no verb {verb!r}"
    with cmd.make_context(verb, rest) as ctx:
        assert ctx.params is not None


def test_readme_example_commands_parse(group):
    examples = example_commands(REPO / "README.md")
    assert len(examples) >= 10, f"the README should show its CLI tour; found {len(examples)} dfer-edge commands"
    failures = []
    for n, args in examples:
        try:
            parse(group, args)
        except Exception as e:  # noqa: BLE001 - any parse failure is reported with its command
            failures.append(f"dfer-edge {shlex.join(args)}: {type(e).__name__}: {e}")
    assert not failures, "README.md commands that do not parse:\n" + "\n".join(failures)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=rel)
def test_docs_example_commands_parse(group, page):
    failures = []
    for n, args in example_commands(page):
        try:
            parse(group, args)
        except Exception as e:  # noqa: BLE001
            failures.append(f"dfer-edge {shlex.join(args)}: {type(e).__name__}: {e}")
    assert not failures, f"{rel(page)}: commands that do not parse:\n" + "\n".join(failures)


def test_a_bad_command_would_be_caught(group):
    """The parse check has teeth: an unknown option and a bad value are errors."""
    with pytest.raises(Exception, match="--no-such-option"):
        parse(group, ["predict", "samples/astronaut.jpg", "--no-such-option"])
    with pytest.raises(Exception):
        parse(group, ["predict", "samples/astronaut.jpg", "--workers", "-1"])


def test_make_targets_named_in_the_pages_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", makefile, flags=re.M))
    missing = []
    for page in PAGES:
        # `make X` in backticks, or a command line starting with it (prose such as "make the faces" is not one).
        for m in re.finditer(r"(?:`|^\s*)make ([a-z0-9-]+)", page.read_text(), flags=re.M):
            if m.group(1) not in targets:
                missing.append(f"{rel(page)}: make {m.group(1)}")
    assert not missing, "pages name make targets the Makefile does not have:\n" + "\n".join(missing)


# ---- (d) the README stays short --------------------------------------------------------------------------

def test_readme_is_short():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; keep it at most {README_MAX_LINES} and move detail to docs/"


def test_readme_keeps_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text, "README.md must show `make demo` and `make test`"


# ---- (e) no internal run names or issue numbers -------------------------------------------------------

RUN_NAME = re.compile(r"\b(r\d+[A-Z]?|m\d[a-z]+\d*|cap[A-Z]|t\d)\b")
KNOWN_RUNS = {"r2", "r6", "r13B", "m3a", "m3w", "m3t", "capA", "capB", "t1"}


def run_names() -> set[str]:
    """The run names convert/EXPERIMENTS.md uses (it is where history lives), and those known to exist."""
    return set(RUN_NAME.findall(EXPERIMENTS.read_text())) | KNOWN_RUNS


def test_run_names_are_read_from_experiments():
    names = set(RUN_NAME.findall(EXPERIMENTS.read_text()))
    assert {"r6", "capB", "m3w"} <= names, f"convert/EXPERIMENTS.md's run names not recognised: {sorted(names)}"


ISSUE_REF = re.compile(r"\bissues?\s*#?\d+|(?<![\w&/])#\d+\b", re.I)


@pytest.mark.parametrize("page", [*PAGES, REPO / "models" / "MODEL_CARD.md"], ids=rel)
def test_no_internal_run_names_or_issue_numbers(page):
    names = run_names()
    problems = []
    for i, line in enumerate(page.read_text().splitlines(), 1):
        text = re.sub(r"https?://\S+", "", line)  # an upstream project's URL is not ours
        for word in set(re.findall(r"\b\w+\b", text)) & names:
            problems.append(f"{rel(page)}:{i}: run name {word!r}: say 'the shipped model' or 'the previous model'")
        for m in ISSUE_REF.finditer(text):
            problems.append(f"{rel(page)}:{i}: issue reference {m.group(0)!r}: history belongs in git and "
                            "convert/EXPERIMENTS.md")
    assert not problems, "\n".join(problems)


# ---- numbers quoted from reports -------------------------------------------------------------------------

def test_quoted_report_checkouts_match_the_reports():
    """Where a page says which checkout a report was made on, the report must still say so: a regenerated
    report makes the page's caveat stale, and this test says where."""
    stale = []
    for page in PAGES:
        text = page.read_text()
        for m in re.finditer(r"checkout `([0-9a-f]{7,40})`", text):
            reports = [r for r in (REPO / "benchmarks").glob("RESULTS*.md") if f"checkout {m.group(1)}" in r.read_text()]
            if not reports:
                stale.append(f"{rel(page)}: checkout {m.group(1)} is no longer the checkout of any benchmarks/RESULTS*.md")
    assert not stale, "\n".join(stale) + "\nupdate what the page says about the regenerated report"


def quoted_figures() -> list[tuple[Path, str, Path]]:
    """(page, table row, report) for every table row on a page that names its report in the row itself."""
    out = []
    for page in PAGES:
        for row in page.read_text().splitlines():
            if not row.startswith("|"):
                continue
            for target in re.findall(r"\]\(([^)#]+\.md)\)", row):
                dest = (page.parent / target).resolve()
                if dest.parent.name in ("benchmarks", "models") and dest.exists():
                    out.append((page, row, dest))
    return out


def test_figures_in_rows_that_cite_a_report_are_in_that_report():
    rows = quoted_figures()
    assert rows, "the README's comparison table should cite its reports row by row"
    wrong = []
    for page, row, report in rows:
        source = report.read_text().replace(",", "")
        cells = [c for c in row.split("|")[1:-1]]
        for number in re.findall(r"(?<![\w.])\d[\d,]*\.?\d*(?=\s*(?:ms|s|MiB|%|x)\b)", " ".join(cells[1:-1])):
            if number.replace(",", "") not in source:
                wrong.append(f"{rel(page)}: {number} is not in {rel(report)} (row: {row.strip()[:80]})")
    assert not wrong, "figures that their cited report does not contain:\n" + "\n".join(wrong)


def test_the_cli_page_introduces_every_verb(group):
    """The hand-written table at the top of docs/cli.md.in names each verb with a link to its reference."""
    template = (DOCS / "cli.md.in").read_text()
    intro = template.split("## ")[0]
    missing = [n for n in group.commands if f"[`{n}`](#dfer-edge-{n})" not in intro]
    assert not missing, f"docs/cli.md.in's table of verbs lacks: {', '.join(missing)}"
