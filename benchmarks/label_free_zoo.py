"""Do the label-free measures track linear accuracy across the zoo? Spearman rank correlation of
RankMe (Garrido et al. 2023), uniformity (Wang & Isola 2020) and the per-dimension std ratio (SimSiam
Sec. 4.1) with linear top-1, over the variants ``benchmarks/zoo.py`` trained at one budget.

Reads the zoo's work directory (each variant's frozen test features, ``runs/<v>/features``, as the
pipeline's ``features`` stage writes them) and its ``zoo-results.json`` (linear and kNN top-1),
computes each measure on the test features exactly as the ``probe`` stages do
(:mod:`csl.evaluate.label_free`; uniformity on the same seeded subset of 4,096), and prints one row
per variant and the correlations. Uniformity is lower-is-better, so a useful measure correlates
negatively there.

    python benchmarks/zoo.py --epochs 3 --variants V1 ... --work W --results-dir R
    python benchmarks/label_free_zoo.py --work W --results R/zoo-results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="the zoo's --work directory")
    ap.add_argument("--results", type=Path, required=True, help="the zoo's zoo-results.json")
    args = ap.parse_args(argv)

    from scipy.stats import spearmanr

    from csl.evaluate import label_free
    from csl.stages.features import read_features
    from csl.stages.probes import UNIFORMITY_SAMPLES, _subset

    rows = [r for r in json.loads(args.results.read_text()) if not r.get("supervised")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    print(f"command: python benchmarks/label_free_zoo.py --work {args.work} --results {args.results}  (commit {commit})")
    print(f"zoo rows: {len(rows)} self-supervised variants, {rows[0]['epochs'] if rows else '?'} epochs each, "
          f"zoo commit {rows[0].get('commit', '?') if rows else '?'}")
    print(f"{'variant':<22}{'linear':>8}{'kNN':>8}{'rankme':>9}{'uniformity':>12}{'std_ratio':>11}"
          f"{'rankme (random)':>17}")
    table = []
    for r in rows:
        f = read_features(args.work / "runs" / r["variant"] / "features")
        rand = read_features(args.work / "runs" / r["variant"] / "features", random=True)
        assert f is not None
        rows_u = _subset(len(f.test), UNIFORMITY_SAMPLES, 0)
        m = {"rankme": label_free.rankme(f.test), "uniformity": label_free.uniformity(f.test[rows_u]),
             "std_ratio": label_free.std_ratio(f.test)}
        rr = label_free.rankme(rand.test) if rand is not None else float("nan")
        table.append((r, m))
        print(f"{r['variant']:<22}{100 * r['linear_top1']:>7.2f}%{100 * r['knn_top1']:>7.2f}%{m['rankme']:>9.1f}"
              f"{m['uniformity']:>12.3f}{m['std_ratio']:>11.3f}{rr:>17.1f}")
    lin = np.array([r["linear_top1"] for r, _ in table])
    print(f"\nSpearman rank correlation with linear top-1 over {len(table)} variants:")
    for name in ("rankme", "uniformity", "std_ratio"):
        rho, p = spearmanr([m[name] for _, m in table], lin)
        print(f"  {name:<11} rho = {rho:+.3f}  (p = {p:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
