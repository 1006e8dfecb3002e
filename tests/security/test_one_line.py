"""One line per line (issue 21, item 4), attacked through the real CLI.

A pull request names keys, files and kinds, and writes remarks; a vendor writes error messages.
None of it may start a line of its own in anything the CLI writes (stderr, text and JSON plans,
Markdown, apply's outcome lines): a GitHub runner reads a line starting with ``::`` (after blanks)
or holding ``##[`` as a workflow command (``::error::``, ``::add-mask::``). The fake runner below
flags every such line; no output of ours ever writes one, so any line it finds came from input.
The Markdown comment is parsed (markdown-it-py) and may hold no heading but its title, no image,
no link, no raw HTML but the comment's own tags, and no text GitHub would turn into a mention, a
link or an issue reference."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from reconciler.manifest.oneline import lines, one_line
from tests.security.conftest import TCAPLUS_PROTOS, Emulators, Repo, Run, account, config_text
from tests.support import QuietHTTPServer

PROTO = (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8")
INJECTED = "::error::pwned"
# what a GitHub runner would take as a workflow command, per physical line (every line break a log
# viewer knows, str.splitlines's set, so stricter than the runner's CR/LF)
_COMMAND = re.compile(r"^\s*::|##\[")
_OWN_TAGS = {"<details>", "</details>", "<summary>", "</summary>", "<code>", "</code>"}


def runner_commands(text: str) -> list[str]:
    """The fake runner: every line it would run as a workflow command."""
    return [line for line in text.splitlines() if _COMMAND.search(line)]


def markdown_problems(md: str) -> list[str]:
    """What a Markdown comment shows that no value may bring: headings (but the title), images,
    links, foreign HTML, and text GitHub links or notifies after rendering (mentions, bare links,
    www. links, issue references)."""
    found: list[str] = []
    headings = 0
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    for tok in tokens:
        if tok.type == "heading_open":
            headings += 1
        if tok.type == "html_block":
            found += [f"html block: {tag}" for tag in re.findall(r"<[^>]*>", tok.content) if tag not in _OWN_TAGS]
        for child in tok.children or []:
            if child.type in ("image", "link_open"):
                found.append(f"{child.type}: {child.attrs}")
            if child.type == "html_inline" and child.content not in _OWN_TAGS:
                found.append(f"html: {child.content}")
            if child.type in ("text", "code_inline"):
                for pattern in (r"@[A-Za-z0-9]", r"[A-Za-z][A-Za-z0-9+.-]*://", r"\bwww\.", r"#\d"):
                    if re.search(pattern, child.content):
                        found.append(f"{pattern} in {child.content!r}")
    if headings != 1:
        found.append(f"{headings} headings")
    return found


def test_one_line_escapes_every_line_break_and_control() -> None:
    for ch in "\n\r\t\x0b\x0c\x1b\x7f\x85\u2028\u2029\u202e":
        out = one_line(f"a{ch}b")
        assert ch not in out and out == f"a\\u{ord(ch):04x}b", repr(out)
        assert len(out.splitlines()) == 1
    assert one_line("::error::x") == "\\u003a:error::x" and one_line("  ::add-mask::x") == "  \\u003a:add-mask::x"
    assert one_line("x ##[error]y") == "x ##\\u005berror]y" and one_line("a::b") == "a::b"
    assert one_line("plain ascii, ünïcode 中文") == "plain ascii, ünïcode 中文"
    assert json.loads(lines(json.dumps({"k": "::e\u2028##[x]"}, ensure_ascii=False, indent=1))) == {"k": "::e\u2028##[x]"}


# -- a vendor whose error messages carry line breaks ------------------------------------------------
def _vendor_handler(message: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if "/list" in self.path:
                body = {"code": 200, "msg": "success", "data": {"list": []}}
            else:
                body = {"code": 1001, "msg": message, "data": None}
            out = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _any  # noqa: N815

    return Handler


@pytest.fixture
def crlf_vendor() -> Iterator[str]:
    """A BestProxy on loopback whose writes fail with a message holding CR LF and a command."""
    server = QuietHTTPServer(("127.0.0.1", 0), _vendor_handler(f"bad account\r\n{INJECTED}\r\n##[add-mask]x"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _clean(*runs: Run) -> None:
    for r in runs:
        assert not runner_commands(r.stdout), r.stdout
        assert not runner_commands(r.stderr), r.stderr
        assert INJECTED.split("::")[1] not in "".join(runner_commands(r.output))


REMARK = "```~~~~ @org/team ![x](https://evil.example/x.png)\n# H <b>"


def test_a_remark_cannot_start_a_line_or_render_as_markdown(configured_repo: Repo) -> None:
    """A remark with a line break, runs of ``` and ~~~, a team mention, an image and a bare link:
    one escaped line in every format; in Markdown no heading, image, link or mention."""
    configured_repo.write("manifests/a.yaml", account(remark=REMARK.replace("\n", "\n" + INJECTED + "\n")[:64]))
    runs = {fmt: configured_repo.run("plan", "--format", fmt) for fmt in ("text", "markdown", "json")}
    for fmt, r in runs.items():
        assert r.code == 0, (fmt, r.output)
    _clean(*runs.values())
    assert "\\n" in runs["text"].stdout and "@org/team" in runs["text"].stdout  # shown, as one line
    md = runs["markdown"].stdout
    assert markdown_problems(md) == [], md
    plain = MarkdownIt("commonmark").render(md)
    assert "evil.example/x.png" in plain and "org/team" in plain  # still readable
    remark = next(d for d in json.loads(runs["json"].stdout)["changes"][0]["diffs"] if d["path"] == "remark")
    assert remark["after"].startswith("```~~~~ @org/team")  # JSON: the same value for a reader
    applied = configured_repo.run("apply", "--auto-approve")
    assert applied.code == 0, applied.output
    _clean(applied)


def test_a_yaml_key_with_a_line_break_is_one_error_line(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account() + f'  "bogus\\n{INJECTED}\\r\\n##[error]x": 1\n')
    for args in (("validate",), ("plan",), ("plan", "--format", "json"), ("plan", "--format", "markdown")):
        r = configured_repo.run(*args)
        assert r.code == 1, r.output
        _clean(r)
        [line] = [x for x in r.stderr.splitlines() if "bogus" in x]
        assert (
            line.startswith("error: manifests/a.yaml:") and "bogus\\u000a::error::pwned\\u000d\\u000a##\\u005berror]x" in line
        ), line


def test_a_kind_with_a_line_break_is_one_error_line(configured_repo: Repo) -> None:
    configured_repo.write("manifests/a.yaml", account().replace("kind: ProxyAccount", f'kind: "X\\n{INJECTED}"'))
    r = configured_repo.run("plan")
    assert r.code == 1, r.output
    _clean(r)
    assert "X\\u000a::error::pwned" in r.stderr, r.stderr


@pytest.mark.parametrize("name", [f"a\n{INJECTED}.yaml", f"{INJECTED}.yaml", "a\r\n ##[error]x\u2028::b.yaml"])
def test_a_file_name_with_a_line_break_is_shown_on_one_line(configured_repo: Repo, name: str) -> None:
    configured_repo.write(f"manifests/{name}", account(remark="ok"))
    runs = [configured_repo.run("plan", "--format", fmt) for fmt in ("text", "markdown", "json")]
    assert all(r.code == 0 for r in runs), [r.output for r in runs]
    _clean(*runs)
    assert json.loads(runs[2].stdout)["changes"][0]["source"] == f"manifests/{name}:1"  # the same value
    assert markdown_problems(runs[1].stdout) == [], runs[1].stdout
    applied = configured_repo.run("apply", "--auto-approve")
    assert applied.code == 0, applied.output
    _clean(applied)
    configured_repo.write(f"manifests/{name}", account(name="pr02", remark="ok") + "  bogus: 1\n")  # an error naming the file
    for args in (("validate",), ("plan", "--format", "json")):
        r = configured_repo.run(*args)
        assert r.code == 1 and "bogus" in r.stderr, r.output
        _clean(r)


def test_a_vendor_error_with_crlf_is_one_line(repo: Repo, emulators: Emulators, crlf_vendor: str) -> None:
    """The vendor's message reaches apply's outcome lines (text, JSON lines, Markdown) and stderr
    as one escaped line."""
    repo.write("tables/game_players.proto", PROTO)
    repo.write("reconciler.yaml", config_text(emulators, bestproxy=crlf_vendor))
    repo.write("manifests/a.yaml", account(remark="ok"))
    runs = [repo.run("apply", "--auto-approve", "--format", fmt) for fmt in ("text", "json", "markdown")]
    for r in runs:
        assert r.code in (1, 4), r.output
        assert "bad account" in r.output, r.output
    _clean(*runs)
    assert "bad account\\u000d\\u000a::error::pwned\\u000d\\u000a##\\u005badd-mask]x" in runs[0].output
    for line in runs[1].stdout.splitlines():
        json.loads(line)  # every JSON line still parses
    assert markdown_problems(runs[2].stdout) == [], runs[2].stdout


def test_saved_plans_and_show_keep_one_line(configured_repo: Repo, tmp_path: Path) -> None:
    configured_repo.write(f"manifests/a\n{INJECTED}.yaml", account(remark=REMARK[:64]))
    out = tmp_path / "plan.json"
    r = configured_repo.run("plan", "--out", str(out))
    assert r.code == 0, r.output
    shown = [configured_repo.run("show", str(out), "--format", fmt) for fmt in ("text", "markdown", "json")]
    assert all(s.code == 0 for s in shown), [s.output for s in shown]
    _clean(r, *shown)
    assert markdown_problems(shown[1].stdout) == [], shown[1].stdout


def test_a_drift_report_keeps_one_line(configured_repo: Repo) -> None:
    configured_repo.write(f"manifests/a\n{INJECTED}.yaml", account(remark="x ##[error]y @team https://evil.example"))
    runs = [configured_repo.run("plan", "--drift", "--format", fmt) for fmt in ("text", "json", "markdown")]
    assert all(r.code == 2 for r in runs), [r.output for r in runs]
    _clean(*runs)
    assert json.loads(runs[1].stdout)["drift"][0]["source"] == f"manifests/a\n{INJECTED}.yaml:1"
    assert markdown_problems(runs[2].stdout) == [], runs[2].stdout
