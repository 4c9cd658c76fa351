import numpy as np
import pandas as pd

from kgrec.coldstart.memory import release_free_memory


def test_release_free_memory_keeps_live_objects() -> None:
    frame = pd.DataFrame({"id": pd.Series([f"u{k}" for k in range(10_000)], dtype="string")})
    arr = np.arange(1_000_000)
    garbage = pd.Series([f"x{k}" for k in range(100_000)], dtype="string")
    del garbage
    release_free_memory()
    release_free_memory()  # idempotent
    assert frame["id"].iloc[9_999] == "u9999"
    assert int(arr.sum()) == 999_999 * 1_000_000 // 2
