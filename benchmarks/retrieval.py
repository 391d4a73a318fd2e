"""mAP@k of Euclidean feature retrieval vs Hamming retrieval on binary codes (paper §6.1), with
time per query, on a labelled index from `alexnet features` and codes from `alexnet codes train`.

    python benchmarks/retrieval.py --index F.npz --codes codes.pt [--queries 1000] [--k 8]

The first --queries rows (after a seeded shuffle) query the remaining rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from alexnet.analysis.codes import load_codes
from alexnet.analysis.features import load_index, mean_average_precision, neighbours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True)
    p.add_argument("--codes", required=True)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=8)
    args = p.parse_args()
    index, codes = load_index(args.index), load_codes(args.codes)
    order = np.random.default_rng(0).permutation(len(index["labels"]))
    q, db = order[: args.queries], order[args.queries :]
    feats, labels = index["features"], index["labels"]
    packed = codes.encode(feats)
    print(
        f"# {args.index}: {len(db)} indexed, {len(q)} queries, {feats.shape[1]}-d {index['layer']} "
        f"vs {codes.bits}-bit codes ({packed.shape[1]} bytes)"
    )
    for metric, data in (("euclidean", feats), ("hamming", packed)):
        t = time.perf_counter()
        _, found = neighbours(data[q], data[db], args.k, metric)
        ms = (time.perf_counter() - t) / len(q) * 1e3
        m = mean_average_precision(labels[q], labels[db][found])
        print(f"{metric:<10} mAP@{args.k} {m:.4f}   {ms:.3f} ms/query   {data[db].nbytes / 1e6:.1f} MB index")


if __name__ == "__main__":
    main()
