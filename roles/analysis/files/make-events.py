"""Write a sample dataset of integer events as Parquet files, with the exact per-key sums and
counts beside it (``_expected.json``), so that any engine's aggregate can be checked to the digit.

Usage: make-events.py DIR ROWS FILES. Rows are (key: int32 in 0..15, value: int64 in 0..2**32),
drawn from a fixed seed; the folder appears whole or not at all (written aside, then renamed).
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KEYS = 16
SEED = 20261130


def main(dest: str, rows: int, files: int) -> None:
    parent = os.path.dirname(dest.rstrip("/"))
    os.makedirs(parent, mode=0o755, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".events-", dir=parent)
    try:
        rng = np.random.default_rng(SEED)
        sums = np.zeros(KEYS, dtype=np.int64)
        counts = np.zeros(KEYS, dtype=np.int64)
        for index in range(files):
            n = rows // files + (1 if index < rows % files else 0)
            keys = rng.integers(0, KEYS, n, dtype=np.int32)
            values = rng.integers(0, 2**32, n, dtype=np.int64)
            # Exact integer sums (bincount's float weights would round above 2**53).
            sums += np.array([values[keys == k].sum() for k in range(KEYS)], dtype=np.int64)
            counts += np.bincount(keys, minlength=KEYS)
            table = pa.table({"key": keys, "value": values})
            pq.write_table(
                table, os.path.join(work, f"part-{index:04d}.parquet"), compression="zstd"
            )
        expected = {
            "rows": rows,
            "bytes_in_memory": rows * (4 + 8),
            "per_key": {str(k): [int(sums[k]), int(counts[k])] for k in range(KEYS)},
        }
        with open(os.path.join(work, "_expected.json"), "w") as handle:
            json.dump(expected, handle, indent=1)
        for name in os.listdir(work):
            os.chmod(os.path.join(work, name), 0o644)
        os.chmod(work, 0o755)
        os.rename(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
