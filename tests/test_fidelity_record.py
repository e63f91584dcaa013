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


def _close(shown: float, value: float, digits: int) -> bool:
    return abs(shown - value) <= 0.5 * 10**-digits + 1e-9


def _numbers(text: str) -> list[float]:
    """Every number a table row or raw output line shows, in order (``1,398`` -> 1398; ``%``, ``x``,
    brackets and slashes dropped)."""
    return [float(x.replace(",", "")) for x in re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?", text)]


def _epoch_figures(record: dict, method: str) -> list[tuple[float, int]]:
    """What ``fidelity.py`` prints for one method at equal epochs, as (value, decimals), in the
    order of its row: csl linear mean, per seed; csl kNN mean, per seed; peer linear, kNN; csl -
    peer linear; csl images/s, peer images/s, their ratio."""
    ours = _runs(record, method, "csl", 10)
    theirs = _runs(record, method, "peer", 10)[0]
    seeds = [ours[s] for s in sorted(ours)]
    assert len(seeds) == 2, f"{method}: the table shows two csl seeds"
    out: list[tuple[float, int]] = []
    for field in ("linear", "knn"):
        values = [100 * r[field] for r in seeds]
        out += [(float(np.mean(values)), 2)] + [(v, 2) for v in values]
    mean_linear = float(np.mean([r["linear"] for r in seeds]))
    ips = float(np.mean([r["images_per_s"] for r in seeds]))
    return out + [
        (100 * theirs["linear"], 2),
        (100 * theirs["knn"], 2),
        (100 * (mean_linear - theirs["linear"]), 2),
        (ips, 0),
        (theirs["images_per_s"], 0),
        (ips / theirs["images_per_s"], 2),
    ]


def _wallclock_figures(record: dict, method: str, peer_epochs: int, csl_epochs: int) -> list[tuple[float, int]]:
    """The equal-wall-clock row: budget s, peer epochs, peer s, peer linear, kNN, csl epochs, csl s,
    csl linear, kNN, csl - peer linear."""
    theirs = _runs(record, method, "peer", peer_epochs)[0]
    ours = _runs(record, method, "csl", csl_epochs)[0]
    assert ours["seconds"] <= theirs["seconds"], f"{method}: csl trained longer than the peer's budget"
    return [
        (theirs["seconds"], 0),
        (theirs["epochs"], 0),
        (theirs["seconds"], 0),
        (100 * theirs["linear"], 2),
        (100 * theirs["knn"], 2),
        (ours["epochs"], 0),
        (ours["seconds"], 0),
        (100 * ours["linear"], 2),
        (100 * ours["knn"], 2),
        (100 * (ours["linear"] - theirs["linear"]), 2),
    ]


def _check(where: str, shown: list[float], expected: list[tuple[float, int]]) -> None:
    assert len(shown) == len(expected), (where, shown)
    for i, (s, (value, digits)) in enumerate(zip(shown, expected, strict=True)):
        assert _close(s, value, digits), (where, f"figure {i + 1}", s, value)


def test_equal_epoch_rows_match_record():
    record = _record()
    rows = _table("Equal epochs")
    assert len(rows) >= 6
    for name, _machine, *cells in rows:
        _check(name, _numbers(" ".join(cells)), _epoch_figures(record, NAMES[name]))


def test_equal_wallclock_rows_match_record():
    record = _record()
    rows = _table("Equal wall-clock")
    assert rows
    for name, *cells in rows:
        shown = _numbers(" ".join(cells))
        _check(name, shown, _wallclock_figures(record, NAMES[name], int(shown[1]), int(shown[5])))


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
        _check(path.name, _numbers(line.split(maxsplit=1)[1]), _epoch_figures(record, line.split()[0]))
    for line in _section(lines, "equal wall-clock"):
        shown = _numbers(line.split(maxsplit=1)[1])
        _check(path.name, shown, _wallclock_figures(record, line.split()[0], int(shown[1]), int(shown[5])))


def test_every_table_row_has_its_raw_output():
    """Each method in the equal-epoch table has a committed raw output whose row prints it."""
    printed = set()
    for path in RAW:
        printed |= {line.split()[0] for line in _section(path.read_text().splitlines(), "equal epochs")}
    shown = {NAMES[row[0]] for row in _table("Equal epochs")}
    assert shown <= printed, f"table rows without a raw output of 2026-12-07: {sorted(shown - printed)}"
