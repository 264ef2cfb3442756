"""The report: its PNGs open and show one point per team; without matplotlib, tables and a note."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from concilium.agents.providers import scripted
from concilium.agents.providers.scripted import Script
from concilium.eval.datasets import load_dataset
from concilium.eval.report import ACCURACY_PLOT, COLORS, LATENCY_PLOT, write_report
from concilium.eval.runner import EvalOptions, Evaluation
from concilium.team import load_team

matplotlib = pytest.importorskip("matplotlib")


def run(tmp_path: Path, examples: Path) -> Evaluation:
    """Two teams on 12 generated problems: one always says 7, one solves them."""
    from concilium.tools.calculator import evaluate, find_expression

    def solve(call: scripted.ScriptCall) -> str:
        return f"Answer: {evaluate(find_expression(call.prompt) or '0'):g}"

    with scripted.use("seven", Script(default="Answer: 7")), \
            scripted.use("solver", Script(default=solve)):
        teams = [load_team(examples / "single.yaml", model="scripted/seven"),
                 load_team(examples / "gvr.yaml", model="scripted/solver")]
        evaluation = Evaluation(teams, load_dataset("arith:12:5"), tmp_path, EvalOptions())
        asyncio.run(evaluation.run())
    return evaluation


def pixels_of(image: object, hex_color: str, tolerance: float = 0.02) -> int:
    import numpy as np

    rgb = np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[:, :, :3] - rgb).max(axis=2) < tolerance).sum())  # type: ignore[index]


def test_pngs_open_and_show_each_teams_points(tmp_path: Path, examples: Path) -> None:
    from matplotlib.image import imread

    evaluation = run(tmp_path, examples)
    summary = evaluation.write_summary()
    report = write_report(summary, evaluation.records(), tmp_path)
    assert [p.name for p in report.images] == [ACCURACY_PLOT, LATENCY_PLOT]
    for path in report.images:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 400
        for color in COLORS[:2]:  # team 1 and team 2 each drew their marker(s)
            assert pixels_of(image, color) > 40, (path.name, color)
        assert pixels_of(image, COLORS[2]) == 0  # and there is no third team
    text = report.path.read_text()
    assert f"![accuracy_tokens]({ACCURACY_PLOT})" in text and LATENCY_PLOT in text
    assert "| single | single | 0.0%" in text and "| gvr-calculator | gvr | 100.0%" in text
    assert "| single | gvr-calculator | 12 | 0 | 12 |" in text and "significant (p < 0.05)" in text


def test_html_report(tmp_path: Path, examples: Path) -> None:
    evaluation = run(tmp_path, examples)
    report = write_report(evaluation.write_summary(), evaluation.records(), tmp_path, "html")
    page = report.path.read_text()
    assert report.path.name == "report.html" and page.startswith("<!doctype html>")
    assert f'<img src="{ACCURACY_PLOT}"' in page and "<td>gvr-calculator</td>" in page
    assert "<code>arith:12:5</code>" in page


def test_without_matplotlib_the_report_keeps_its_tables(
    tmp_path: Path, examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluation = run(tmp_path, examples)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without it sees
    report = write_report(evaluation.write_summary(), evaluation.records(), tmp_path / "r")
    assert report.images == [] and not (tmp_path / "r" / ACCURACY_PLOT).exists()
    text = report.path.read_text()
    assert "pip install 'concilium[eval]'" in text and "| gvr-calculator | gvr |" in text
    assert "![" not in text


def test_partial_and_failed_runs_are_labelled(tmp_path: Path, examples: Path) -> None:
    evaluation = run(tmp_path, examples)
    summary = evaluation.summary(complete=False)
    summary["teams"][0]["status"] = {"ok": 10, "failed": 2}
    text = write_report(summary, evaluation.records(), tmp_path).path.read_text()
    assert "**Partial results**" in text
    assert "single: 2 failed; rerun the same command" in text
