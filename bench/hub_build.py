"""Hub neighbours at build time (rag/index/hubness.py) at 100k passages: a cold build, an update that
changes 10 passages, and the stored similarities against brute force on 200 rows.

    python bench/hub_build.py

Vectors are synthetic (200 clusters in 384 dimensions, unit length), as bench/scale.py's.
"""
import sys, time, numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rag.index.hubness import neighbours, update_neighbours  # noqa: E402
rng = np.random.default_rng(0)
n = 100_000
centers = rng.normal(size=(200, 384)).astype(np.float32)
v = centers[rng.integers(0, 200, n)] + 0.8 * rng.normal(size=(n, 384)).astype(np.float32)
v /= np.linalg.norm(v, axis=1, keepdims=True)
t = time.perf_counter(); sims, ids = neighbours(v); full = time.perf_counter() - t
print(f"cold: neighbours of {n:,} passages in {full:.1f}s", flush=True)
# one note edited: 10 passages replaced, 10 new appended
v2 = v.copy(); src = np.arange(n)
v2[:10] = rng.normal(size=(10, 384)); v2[:10] /= np.linalg.norm(v2[:10], axis=1, keepdims=True); src[:10] = -1
t = time.perf_counter(); s2, i2, computed = update_neighbours(v2, src, sims, ids); inc = time.perf_counter() - t
print(f"incremental (10 passages changed): {inc:.1f}s, {computed} rows computed against all", flush=True)
# exactness on a sample of rows against brute force
rows = rng.integers(0, n, 200)
exact = -np.sort(-(v2[rows] @ v2.T + np.where(np.arange(n)[None, :] == rows[:, None], -np.inf, 0)), axis=1)[:, :5]
print("max |stored - exact| on 200 rows:", float(np.abs(s2[rows] - exact).max()))
