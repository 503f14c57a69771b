"""report.html: self-contained (every figure embedded, nothing external), every section, escaped names,
each method's citation and hyperparameters, the command lines recorded by the CLI, the environment."""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from benchmark.report.__main__ import main as report_main
from benchmark.report.catalog import citation
from benchmark.report.html import SECTIONS, display_width
from benchmark.report.html_tables import escape
from benchmark.report.spread import format_top1
from benchmark.report.writer import write_reports
from benchmark.store.commands import read_commands, record_command
from benchmark.store.run_store import RunStore
from helpers import make_result

ODD = 'gmp<i>&"odd\''  # a label HTML would misread if it were not escaped
FAST = ["--dataset", "synthetic", "--epochs", "1", "--batch-size", "64", "--no-progress",
        "--executor", "inline", "--threads", "1"]


class Page(HTMLParser):
    """Every start tag with its attributes, the text, the style sheets, and the text under each id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    monkeypatch.setattr("os.fsync", lambda fd: None)


def fill(store: RunStore) -> None:
    """dense, gmp (the reference), granet and an oddly named gmp variant at two sparsities, 3 seeds,
    one failed seed (a flag), and runs from a second environment."""
    for seed in range(3):
        store.save(make_result("dense", 0.0, seed, top1=0.92))
        for target in (0.5, 0.9):
            store.save(make_result("gmp", target, seed, top1=0.88 - 0.1 * target + 0.01 * seed))
            store.save(make_result("gmp", target, seed, top1=0.86 - 0.1 * target, label=ODD,
                                   hparams={"end_frac": 0.5}))
            granet = make_result("granet+ap", target, seed, top1=0.87 - 0.1 * target + 0.02 * seed)
            granet["environment"] = {"torch": "2.6.0", "device": "cuda", "cpu_flags": ["avx2", "fma"]}
            store.save(granet)
    store.save(make_result("granet+ap", 0.9, 3, status="failed", reason="diverged"))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report with figures, drawn once for the module (rendering is the slow part)."""
    root = tmp_path_factory.mktemp("results")
    store = RunStore(root)
    fill(store)
    record_command(root, ["--methods", "gmp", "granet+ap", "--out", "res<1>"], store.run_ids())
    record_command(root, ["--methods", "other"], ["zzzzzzzzzzzz"])  # made none of these runs
    paths = write_reports(store, root)
    return paths, paths.html.read_text(encoding="utf-8")


def test_every_png_figure_is_embedded_as_a_data_uri_and_nothing_else_is_an_image(report):
    paths, text = report
    pngs = {p.name: p.read_bytes() for p in paths.plots if p.suffix == ".png"}
    assert len(pngs) >= 3 and any(p.suffix == ".pdf" for p in paths.plots)
    images = [a["src"] for tag, a in Page(text).tags if tag == "img"]
    assert len(images) == len(pngs)
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in images)
    assert sorted(base64.b64decode(src[len(prefix):]) for src in images) == sorted(pngs.values())


def test_nothing_points_outside_the_page(report):
    _, text = report
    page = Page(text)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed", "base")]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "poster", "data", "action", "background"):
                assert value.startswith("#") or value.startswith("data:image/png;base64,"), (tag, name, value)
    css = " ".join(page.styles)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "http://" not in text and "https://" not in text and "file:" not in text


def test_every_section_and_table_of_contents_entry_exists(report):
    _, text = report
    page = Page(text)
    ids = page.ids()
    expected = {a for a, _, subs in SECTIONS for a in [a] + [s for s, _ in subs]}
    assert expected <= ids
    links = {a["href"][1:] for tag, a in page.tags if tag == "a" and a.get("href", "").startswith("#")}
    assert expected <= links and links <= ids
    assert page.all_text.count("prunebench report") >= 1


def test_method_names_and_flags_are_escaped(report):
    _, text = report
    assert ODD not in text and "<i>" not in text
    assert escape(ODD) in text
    assert ODD in Page(text).all_text  # and read back as the label itself
    assert escape('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert "res&lt;1&gt;" in text  # the recorded command line too


def test_pivot_and_leaderboard_show_the_boards_numbers(report):
    paths, text = report
    board = pd.read_csv(paths.csv)
    page_text = Page(text).all_text
    for _, row in board.iterrows():
        assert format_top1(row) in page_text, row["method"]
    assert page_text.count(format_top1(board[board["method"] == "dense"].iloc[0])) == 2  # pivot + board


def test_flags_citations_and_resolved_hyperparameters_are_shown(report):
    paths, text = report
    page_text = Page(text).all_text
    assert "1/4 seeds failed (1 diverged)" in page_text
    board = pd.read_csv(paths.csv)
    for method in board["method_base"].unique():
        short, full = citation(method)
        assert short in page_text and full in page_text, method
    assert "Liu et al. 2023" in page_text  # AP's citation rides on granet+ap
    assert "end_frac" in page_text and "0.5" in page_text


def test_commands_of_these_runs_and_distinct_environments_are_shown(report):
    _, text = report
    page_text = Page(text).all_text
    assert "python run_benchmarks.py --methods gmp granet+ap --out 'res<1>'" in page_text
    assert "--methods other" not in page_text  # it planned none of these runs
    assert "environment 1 (" in page_text and "environment 2 (" in page_text
    assert "2.6.0" in page_text and "2.5.0" in page_text
    assert "started_at" not in page_text and "pid" not in page_text.split()


def test_a_report_without_figures_says_why_and_embeds_none(tmp_path):
    store = RunStore(tmp_path)
    fill(store)
    paths = write_reports(store, tmp_path, plots=False)
    text = paths.html.read_text(encoding="utf-8")
    assert not [t for t, _ in Page(text).tags if t == "img"]
    assert "--no-plots" in text and paths.plots == []


def test_display_width_reads_the_pngs_size_and_resolution():
    size = (1500).to_bytes(4, "big") + (900).to_bytes(4, "big")
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + size
    physical = b"\x00" * 5 + b"\x00\x00\x00\x09pHYs" + (5906).to_bytes(4, "big") * 2 + b"\x01"
    assert display_width(header + physical) == round(1500 * 96 / (5906 * 0.0254) * 1.25)
    assert display_width(b"not a png") is None


def test_the_cli_records_its_command_and_a_later_rebuild_still_shows_it(tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "res"
    args = [*FAST, "--methods", "gmp", "--sparsities", "0.5", "--seeds", "0", "--no-plots", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "dense (no pruning)" in printed and "| synthetic |" not in printed  # the pivot, not the table
    assert "report.html" in printed
    (record,) = read_commands(out)
    assert record["argv"] == args and record["command"].startswith("python run_benchmarks.py --dataset")
    assert len(record["run_ids"]) == 2 and set(record["run_ids"]) == set(RunStore(out).run_ids())
    assert set(json.loads(Path(record["file"]).read_text())) >= {"command", "argv", "cwd", "started_at",
                                                                 "hostname", "run_ids"}
    (out / "report.html").unlink()
    assert report_main([str(out), "--no-plots"]) == 0
    assert escape(record["command"]) in (out / "report.html").read_text(encoding="utf-8")
    assert "dense (no pruning)" in capsys.readouterr().out


def test_command_records_never_collide_and_broken_ones_are_skipped(tmp_path):
    paths = [record_command(tmp_path, ["--seeds", str(i)], ["a"]) for i in range(3)]
    assert len(set(paths)) == 3  # same second, same process: still three files
    paths[1].write_text("{not json")
    (tmp_path / "commands" / "link.json").symlink_to(paths[0])
    assert [r["argv"] for r in read_commands(tmp_path)] == [["--seeds", "0"], ["--seeds", "2"]]
