"""The README is the front door: it stays short, and everything else it used to say lives in
docs/, reachable from it. Every relative link in README.md and docs/*.md must lead somewhere — an
existing file and, for `#anchor` links into Markdown, an existing heading under GitHub's slug rules
— so moving a section between pages cannot leave a dead link behind."""

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 260

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=[\"']([^\"']+)[\"']", re.IGNORECASE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks, with inline code spans blanked out."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (github-slugger): the rendered text lowercased, every
    character that is not a letter, digit, mark, connector (`_`), space or hyphen dropped, each
    space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(
        ch for ch in text
        if ch in " -" or unicodedata.category(ch)[0] in "LNM" or unicodedata.category(ch) == "Pc"
    )
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file offers: heading slugs (repeats get -1, -2, … as on GitHub)
    and explicit <a id/name> anchors."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(prose_lines(path), start=1):
        found += [(number, target) for target in INLINE_LINK.findall(line)]
        reference = REFERENCE_LINK.match(line)
        if reference:
            found.append((number, reference.group(1)))
    return found


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in links(path):
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{shown(path)} line {number} ({target})"
        if not destination.exists():
            problems.append(f"{where}: no file {shown(destination)}")
        elif anchor and destination.suffix == ".md" and unquote(anchor) not in anchors(destination):
            problems.append(f"{where}: no heading with anchor #{anchor} in {shown(destination)}")
    return problems


def test_the_readme_stays_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): put the detail in docs/ and link it"
    )


@pytest.mark.parametrize("path", markdown_files(), ids=shown)
def test_every_relative_link_leads_to_a_file_and_heading(path):
    problems = broken_links(path)
    assert not problems, "dead links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / unquote(target.partition("#")[0])).resolve()
        for _, target in links(README)
        if not EXTERNAL.match(target) and target.partition("#")[0]
    }
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Release 2 rolled out on the demo people — `manage.py demo_rollout`",
         "release-2-rolled-out-on-the-demo-people--managepy-demo_rollout"),
        ("Release 2: every personal model starts from the population prior",
         "release-2-every-personal-model-starts-from-the-population-prior"),
        ("Figures — `bench/population.py` (also run by `bench/accuracy.py`)",
         "figures--benchpopulationpy-also-run-by-benchaccuracypy"),
        ("Set-up (two commands)", "set-up-two-commands"),
        ("**Colás** and [the prior](forecasting.md)", "colás-and-the-prior"),
    ],
)
def test_github_slugs(heading, slug):
    assert github_slug(heading) == slug


def test_a_dead_link_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](#nowhere) [file](missing.md) `[code](x.md)`\n",
                    encoding="utf-8")
    assert [target for _, target in links(page)] == ["#title", "#nowhere", "missing.md"]
    problems = broken_links(page)
    assert len(problems) == 2, problems
    assert "#nowhere" in problems[0] and "no file" in problems[1]
