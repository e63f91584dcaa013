"""benchmarks/FIDELITY.md's tables say what the committed results record holds.

Every figure in FIDELITY.md's equal-epoch and equal-wall-clock tables is recomputed here from
``benchmarks/raw/fidelity-results-2026-12-07.json`` (the record ``benchmarks/fidelity.py`` keeps,
one entry per method, side, epochs and seed) the way ``fidelity.py`` prints it: csl's mean and
per-seed linear/kNN top-1, the peer's, the difference, each side's images/s and their ratio. A
table edited by hand, or a record replaced without updating the table, fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "benchmarks" / "FIDELITY.md"
RECORD = ROOT / "benchmarks" / "raw" / "fidelity-results-2026-12-07.json"
NAMES = {
    "SimCLR": "simclr",
    "SupCon": "supcon",
    "MoCo v2": "moco_v2",
    "BYOL": "byol",
    "SimSiam": "simsiam",
    "Barlow Twins": "barlow_twins",
    "SwAV": "swav",
    "DINO": "dino",
}


def _record() -> dict:
    return json.loads(RECORD.read_text())


def _runs(record: dict, method: str, side: str, epochs: int) -> dict[int, dict]:
    """Seed -> run for one method, side and epoch count; one recipe per method in the record."""
    runs: dict[int, dict] = {}
    for key, run in record.items():
        parts = key.split("/")
        if parts[:3] == [method, side, f"e{epochs}"]:
            seed = int(parts[3].lstrip("s"))
            assert seed not in runs, f"two {side} runs of {method} at {epochs} epochs, seed {seed}: {key}"
            runs[seed] = run
    assert runs, f"no {side} run of {method} at {epochs} epochs in {RECORD.name}"
    return runs


def _table(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _pct(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", cell)]


def _close(shown: float, value: float, digits: int) -> bool:
    return abs(shown - value) <= 0.5 * 10**-digits + 1e-9


def test_equal_epoch_rows_match_record():
    record = _record()
    rows = _table("Equal epochs")
    assert len(rows) >= 6
    for row in rows:
        name, _machine, lin, knn, peer_lin, peer_knn, diff, csl_ips, peer_ips, speed = row
        method = NAMES[name]
        ours = _runs(record, method, "csl", 10)
        theirs = _runs(record, method, "peer", 10)[0]
        seeds = [ours[s] for s in sorted(ours)]
        assert len(seeds) == 2, f"{name}: the table shows two csl seeds"
        for cell, field in ((lin, "linear"), (knn, "knn")):
            mean, *per_seed = _pct(cell)
            values = [100 * r[field] for r in seeds]
            assert _close(mean, float(np.mean(values)), 2), (name, field, mean, values)
            assert all(_close(s, v, 2) for s, v in zip(per_seed, values, strict=True)), (name, field, per_seed)
        assert _close(_pct(peer_lin)[0], 100 * theirs["linear"], 2), (name, peer_lin)
        assert _close(_pct(peer_knn)[0], 100 * theirs["knn"], 2), (name, peer_knn)
        mean_linear = float(np.mean([r["linear"] for r in seeds]))
        assert _close(float(diff), 100 * (mean_linear - theirs["linear"]), 2), (name, diff)
        ips = float(np.mean([r["images_per_s"] for r in seeds]))
        assert _close(float(csl_ips), ips, 0), (name, csl_ips, ips)
        assert _close(float(peer_ips), theirs["images_per_s"], 0), (name, peer_ips)
        assert _close(float(speed.rstrip("x")), ips / theirs["images_per_s"], 2), (name, speed)


def test_equal_wallclock_rows_match_record():
    record = _record()
    rows = _table("Equal wall-clock")
    assert rows
    for row in rows:
        name, budget, peer_epochs, peer_s, peer_lin, peer_knn, csl_epochs, csl_s, csl_lin, csl_knn, diff = row
        method = NAMES[name]
        theirs = _runs(record, method, "peer", int(peer_epochs))[0]
        ours = _runs(record, method, "csl", int(csl_epochs))[0]
        assert int(budget.replace(",", "")) == round(theirs["seconds"]) == int(peer_s.replace(",", ""))
        assert int(csl_s.replace(",", "")) == round(ours["seconds"])
        assert ours["seconds"] <= theirs["seconds"], f"{name}: csl trained longer than the peer's budget"
        assert ours["epochs"] == int(csl_epochs) and theirs["epochs"] == int(peer_epochs)
        assert _close(_pct(peer_lin)[0], 100 * theirs["linear"], 2)
        assert _close(_pct(peer_knn)[0], 100 * theirs["knn"], 2)
        assert _close(_pct(csl_lin)[0], 100 * ours["linear"], 2)
        assert _close(_pct(csl_knn)[0], 100 * ours["knn"], 2)
        assert _close(_pct(diff.strip("*"))[0], 100 * (ours["linear"] - theirs["linear"]), 2), (name, diff)


def _check_epoch_line(name: str, line: str, record: dict) -> None:
    """``method  mean (s0/s1)  mean (s0/s1)  peer-linear  peer-kNN  diff  csl-img/s  peer-img/s  ratio x``."""
    tokens = line.split()
    method = tokens[0]
    ours = _runs(record, method, "csl", 10)
    theirs = _runs(record, method, "peer", 10)[0]
    seeds = [ours[s] for s in sorted(ours)]
    for mean, per_seed, field in ((tokens[1], tokens[2], "linear"), (tokens[3], tokens[4], "knn")):
        values = [100 * r[field] for r in seeds]
        assert _close(float(mean), float(np.mean(values)), 2), (name, line)
        shown = [float(x) for x in per_seed.strip("()").split("/")]
        assert all(_close(s, v, 2) for s, v in zip(shown, values, strict=True)), (name, line)
    assert _close(float(tokens[5]), 100 * theirs["linear"], 2), (name, line)
    assert _close(float(tokens[6]), 100 * theirs["knn"], 2), (name, line)
    mean_linear = float(np.mean([r["linear"] for r in seeds]))
    assert _close(float(tokens[7]), 100 * (mean_linear - theirs["linear"]), 2), (name, line)
    ips = float(np.mean([r["images_per_s"] for r in seeds]))
    assert _close(float(tokens[8]), ips, 0) and _close(float(tokens[9]), theirs["images_per_s"], 0), (name, line)
    assert _close(float(tokens[10].rstrip("x")), ips / theirs["images_per_s"], 2), (name, line)


def _check_wallclock_line(name: str, line: str, record: dict) -> None:
    """``method  budget-s  peer-epochs  peer-s  peer-linear  peer-kNN  csl-epochs  csl-s  csl-linear  csl-kNN  diff``."""
    method, budget, peer_epochs, peer_s, peer_lin, peer_knn, csl_epochs, csl_s, csl_lin, csl_knn, diff = line.split()
    theirs = _runs(record, method, "peer", int(peer_epochs))[0]
    ours = _runs(record, method, "csl", int(csl_epochs))[0]
    assert int(budget) == int(peer_s) == round(theirs["seconds"]), (name, line)
    assert int(csl_s) == round(ours["seconds"]), (name, line)
    for shown, value in (
        (peer_lin, theirs["linear"]),
        (peer_knn, theirs["knn"]),
        (csl_lin, ours["linear"]),
        (csl_knn, ours["knn"]),
        (diff, ours["linear"] - theirs["linear"]),
    ):
        assert _close(float(shown), 100 * value, 2), (name, line)


def _section(lines: list[str], title: str) -> list[str]:
    """The result lines under a raw output's ``title`` line and its column header."""
    starts = [i for i, line in enumerate(lines) if line.startswith(title)]
    if not starts:
        return []
    out = []
    for line in lines[starts[0] + 2 :]:
        if not line.strip() or line.startswith("{"):
            break
        out.append(line)
    return out


RAW = sorted((ROOT / "benchmarks" / "raw").glob("fidelity-*-avx2-2026-12-07.txt"))


@pytest.mark.parametrize("path", RAW, ids=[p.name for p in RAW])
def test_raw_outputs_agree_with_record(path: Path):
    """Each committed raw output prints, line for line, the figures the record holds: every column
    of its equal-epoch rows and, where it has one, its equal-wall-clock rows."""
    record = _record()
    lines = path.read_text().splitlines()
    epoch_lines = _section(lines, "equal epochs")
    assert epoch_lines, f"{path.name} has no equal-epoch row"
    for line in epoch_lines:
        _check_epoch_line(path.name, line, record)
    for line in _section(lines, "equal wall-clock"):
        _check_wallclock_line(path.name, line, record)


def test_every_table_row_has_its_raw_output():
    """Each method in the equal-epoch table has a committed raw output whose row prints it."""
    printed = set()
    for path in RAW:
        printed |= {line.split()[0] for line in _section(path.read_text().splitlines(), "equal epochs")}
    shown = {NAMES[row[0]] for row in _table("Equal epochs")}
    assert shown <= printed, f"table rows without a raw output of 2026-12-07: {sorted(shown - printed)}"
