"""`--format markdown`: a per-vendor summary table, collapsed per-resource details, secrets masked,
every value escaped, and the whole comment under 60,000 characters however large the plan.

Rendering is checked with a CommonMark parser (markdown-it-py, raw HTML on, GFM tables), so the
assertions are about what a reader of the pull request sees, not about our escaping code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from reconciler.model import SENSITIVE, Action, Change, FieldDiff, Outcome, Plan, Unmanaged
from reconciler.engine.render import MARKDOWN_LIMIT, render_apply_markdown, render_markdown
from tests.engine.conftest import OTHER_PASSWORD, PASSWORD, Workspace, accounts_file

HOSTILE = [
    "</code></summary></details><script>alert(1)</script>",
    "| a | b |\n|---|---|",
    "**bold** _em_ ~~gone~~ [link](https://evil.example) ![img](https://evil.example/x.png)",
    "line one\n\n# heading\n- item\n> quote",
    "`tick` ``double`` \\`escaped\\`",
    "&lt;b&gt; &amp; &#60;i&#62;",
    "<https://evil.example> https://evil.example/auto",
    "<img src=x onerror=alert(1)> <a href='https://evil.example'>x</a>",
    "\\*not bold\\* \r\n trailing",
]


def html_of(markdown: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough").render(markdown)


class _Text(HTMLParser):
    """Visible text and start tags of rendered HTML (entities decoded, as a browser would)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Text:
    p = _Text()
    p.feed(html)
    p.close()
    return p


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\r", " ").replace("\n", " ")).strip()


def _shown(value: str) -> str:
    """How a value reads in the comment (docs/ci-gitops.md): on one line, line breaks and other
    controls as \\uXXXX; what GitHub would link or notify defused ("https[:]//", "www[.]", a
    zero-width space after "@" and after a "#" before a digit)."""
    from reconciler.manifest.oneline import one_line

    text = one_line(value).replace("://", "[:]//")
    text = re.sub(r"\bwww\.", "www[.]", text, flags=re.I).replace("@", "@\u200b")
    return re.sub(r"#(?=\d)", "#\u200b", text)


def _change(i: int, *, kind: str = "ProxyAccount", action: Action = Action.UPDATE, ndiffs: int = 3) -> Change:
    return Change(
        kind=kind,
        vendor="bestproxy",
        key=f"player{i:05d}",
        action=action,
        resource=f"{kind}/player{i:05d}",
        source=f"manifests/accounts-{i // 100:03d}.yaml:{(i % 100) * 10 + 1}",
        diffs=[FieldDiff(f"field{j}", f"before value {j}", f"after value {j}") for j in range(ndiffs)],
        precondition={"fingerprint": f"sha256:{i:032x}"},
        calls=["POST /gateway/proxy-account/change"],
    )


# -- escaping --------------------------------------------------------------------------------
def test_every_value_is_escaped_and_still_reads_as_written() -> None:
    changes = []
    for v in HOSTILE:
        changes.append(
            Change(
                kind="ProxyAccount",
                vendor="bestproxy",
                key=v,
                action=Action.UPDATE,
                resource=f"ProxyAccount/{v}",
                source=v,
                summary=v,
                notes=[v],
                data={"blocked": v},
                diffs=[FieldDiff(v, v, v), FieldDiff("remark", {"nested": v}, [v, 1])],
            )
        )
    plan = Plan(changes=changes, unmanaged=[Unmanaged("ProxyAccount", v, "k") for v in HOSTILE[:2]], warnings=list(HOSTILE))
    md = render_markdown(plan, title=HOSTILE[0], safety=[HOSTILE[2]])
    html = html_of(md)
    doc = parse(html)
    tags = [t for t, _ in doc.tags]

    # nothing a value carries becomes markup: no links, images, scripts, headings, lists, emphasis
    assert not {"a", "img", "script", "h1", "h2", "h4", "ul", "ol", "li", "em", "del", "pre"} & set(tags)
    assert tags.count("h3") == 1  # our title
    assert tags.count("strong") == len(changes) + 1  # our "Blocked:" labels and the "Unsafe:" label
    assert tags.count("details") == tags.count("summary") == len(changes)
    assert html.count("</details>") == len(changes)
    # one table per change with exactly its two diff rows, three cells each (no row was split)
    assert tags.count("table") == len(changes) + 1  # + the vendor table
    for table in re.findall(r"<table>.*?</table>", html, re.S)[1:]:
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
        assert len(rows) == 3 and all(r.count("<td") == 3 for r in rows[1:])
    # every value shows as written, on one line, links and mentions defused
    visible = _flat(" ".join(doc.text))
    for v in HOSTILE:
        assert _flat(_shown(v)) in visible, v


def test_real_plan_in_markdown_escapes_live_values(bp: Workspace) -> None:
    accounts_file(bp, ["game01"], remark="plain")
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    hostile = "</details>**x**[a](https://e.x)|`"
    bp.api("/gateway/whitelist-account/change-remark", account="game01", remark=hostile)
    md = bp.cli("plan", "--format", "markdown").stdout
    doc = parse(html_of(md))
    assert "a" not in [t for t, _ in doc.tags] and md.count("</details>") == 1
    assert f'"{_shown(hostile)}"' in " ".join(doc.text)


# -- table, details, secrets ----------------------------------------------------------------
def test_summary_table_per_vendor_and_collapsed_details(bp: Workspace) -> None:
    accounts_file(bp, ["game01", "game02", "game03"], remark="v1")
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    accounts_file(bp, ["game01", "game02", "game04"], remark="v1")
    accounts_file(bp, ["game05"], remark="v2", rel="manifests/more.yaml")
    bp.write(
        "manifests/scope.yaml",
        """
        apiVersion: reconciler/v1
        kind: PruneScope
        metadata: {name: games}
        spec: {target: ProxyAccount, match: {usernamePrefix: game}}
        """,
    )
    bp.api("/gateway/whitelist-account/change-password", account="game01", password=OTHER_PASSWORD)
    bp.api("/gateway/whitelist-account/add", accounts="stray1:abcdef1", product_type=9)
    r = bp.cli("plan", "--format", "markdown")
    assert r.exit_code == 0
    md = r.stdout
    assert "| vendor | create | update | replace | delete | stale | unmanaged |" in md
    assert "| bestproxy | 2 | 1 | 0 | 1 | 0 | 1 |" in md
    html = html_of(md)
    summaries = re.findall(r"<summary>(.*?)</summary>", html)
    assert len(summaries) == 4 and "<details open" not in html  # collapsed
    doc = parse(html)
    text = _flat(" ".join(doc.text))
    assert "- delete ProxyAccount/game03" in text and "+ create ProxyAccount/game04" in text
    # the changed password shows only as masked
    assert f'"{SENSITIVE}"' in text
    for secret in (PASSWORD, OTHER_PASSWORD):
        assert secret not in md


def test_no_changes_says_so() -> None:
    md = render_markdown(Plan(noops={"ProxyAccount": 4}))
    assert "No changes. Live state matches the manifests." in md
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 4 unchanged, 0 unmanaged." in md


# -- size ------------------------------------------------------------------------------------
def test_5000_changes_stay_under_the_limit_and_the_tail_is_summarised() -> None:
    changes = [_change(i) for i in range(4000)]
    changes += [_change(i, kind="IpAllowlist", action=Action.CREATE) for i in range(4000, 4500)]
    changes += [_change(i, action=Action.DELETE) for i in range(4500, 5000)]
    plan = Plan(changes=changes)
    plan.sort()
    md = render_markdown(plan)
    assert len(md) < MARKDOWN_LIMIT == 60_000
    html = html_of(md)
    shown = html.count("<details>")
    assert 100 < shown < 5000 and html.count("</details>") == shown
    assert f"_{5000 - shown} more change(s) not shown here" in md
    tail = md[md.index("more change(s) not shown") :]
    listed = {k: int(v) for k, v in re.findall(r"^- (.+?): (\d+)$", tail, re.M)}
    assert sum(listed.values()) == 5000 - shown
    assert listed["ProxyAccount update"] > 0
    assert "Plan: 500 to create, 4000 to update, 0 to replace, 500 to delete" in md


@pytest.mark.parametrize("limit", [5_000, 20_000, MARKDOWN_LIMIT])
def test_limit_holds_for_long_values_many_warnings_and_a_huge_first_change(limit: int) -> None:
    huge = _change(0, kind="IpAllowlist", ndiffs=10_000)
    huge.notes = [f"note {i} " + "x" * 2000 for i in range(100)]
    long_values = _change(1)
    long_values.diffs = [FieldDiff("remark", "a" * 100_000, "<b>" * 30_000)]
    plan = Plan(
        changes=[huge, long_values] + [_change(i) for i in range(2, 3000)],
        warnings=[f"warning {i} " + "w" * 5000 for i in range(500)],
    )
    md = render_markdown(plan, limit=limit, safety=["s" * 100_000])
    assert len(md) < limit
    html = html_of(md)
    assert html.count("<details>") == html.count("</details>")
    assert "more warning(s)" in md and "more change(s) not shown" in md
    if limit == MARKDOWN_LIMIT:
        # the huge change is shown (its rows capped) instead of hiding everything after it
        assert html.count("<details>") >= 2 and "9960 more field(s)" in md


def test_apply_report_for_5000_results_stays_under_the_limit() -> None:
    statuses = ["applied", "stale", "failed"]
    outcomes = [Outcome(_change(i), statuses[i % 3], HOSTILE[i % len(HOSTILE)]) for i in range(5000)]
    md = render_apply_markdown(outcomes)
    assert len(md) < MARKDOWN_LIMIT
    assert "Apply: 1667 applied, 1666 failed, 1667 stale, 0 skipped." in md
    assert "| bestproxy | 0 | 3333 | 0 | 0 | 1667 | 0 |" in md
    html = html_of(md)
    assert not {"a", "img", "script", "details", "pre"} & {t for t, _ in parse(html).tags}
    rows = re.findall(r"<tr>", html)
    shown = len(rows) - 2 - 1  # two header rows (vendor table, results table) and one vendor row
    assert 100 < shown < 5000 and f"{5000 - shown} more result(s) not shown" in md


def test_a_change_too_large_to_show_is_compacted_and_the_rest_still_shown() -> None:
    big = _change(0, ndiffs=40)
    big.diffs = [FieldDiff(f"f{j}", "<" * 1000, "|" * 1000) for j in range(40)]
    plan = Plan(changes=[big] + [_change(i) for i in range(1, 20)])
    md = render_markdown(plan)
    assert len(md) < MARKDOWN_LIMIT
    assert "40 field change(s) and 0 note(s), too large to show here" in md
    assert html_of(md).count("<details>") == 20 and "not shown here" not in md
