"""Batch candidate generation: top-k for every user in chunks, to Parquet and CANDIDATE edges.

A nightly job, not a request path: users are scored in blocks of ``user_chunk`` so memory stays
bounded, and each block goes to the Parquet sink, to the store (one ``replace_edges_from`` per
chunk) and optionally to explanation files as it is produced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kgrec.ranking.candidates import (
    CandidateRun,
    ParquetSink,
    block_frame,
    iter_ranked,
    now_iso,
    write_to_store,
)
from kgrec.ranking.explain import path_records, top_paths

if TYPE_CHECKING:
    from kgrec.graph.store import GraphStore
    from kgrec.ranking.recommender import Recommender


def write_candidates(rec: Recommender, *, k: int = 50, user_ids: Sequence[str] | None = None,
                     item_ids: Sequence[str] | None = None, parquet: str | Path | None = None,
                     store: GraphStore | None = None, explain_to: str | Path | None = None,
                     max_paths: int = 3, exclude_seen: bool = True,
                     show_progress: bool = False, created_at: str | None = None) -> CandidateRun:
    """:meth:`Recommender.write_candidates` (see there).

    ``created_at``: the run's timestamp (default now); the shards of one distributed run
    (``kgrec.distributed``) share their driver's.
    """
    rec._check_fitted()
    if parquet is None and store is None:
        raise ValueError("give parquet=PATH and/or store=GraphStore")
    start = time.perf_counter()
    rows = (np.arange(len(rec._user_pos)) if user_ids is None
            else rec._user_rows(user_ids))
    items = (np.arange(len(rec._item_pos)) if item_ids is None
             else np.unique(rec._item_rows(item_ids)))
    version, created = rec.model_version_, created_at or now_iso()
    sink = ParquetSink(parquet) if parquet is not None else None
    explain_parts: list[pd.DataFrame] = []
    n_rows = n_edges = 0
    graph_users = np.asarray(rec.emb_.user_ids, dtype=object)
    for block in iter_ranked(rec.model_, rec.emb_, rows, items, k=k,
                             rerank_n=rec.rerank_n, retrieval=rec.retrieval,
                             seen=rec.seen_ if exclude_seen else None,
                             user_chunk=rec.user_chunk, show_progress=show_progress):
        frame = block_frame(block, graph_users[block.user_rows], rec.emb_.item_ids)
        n_rows += len(frame)
        if sink is not None:
            sink.write(frame, version, created)
        if store is not None:
            n_edges += write_to_store(store, frame, graph_users[block.user_rows].tolist(),
                                      version, created)
        if explain_to is not None and len(frame):
            paths = top_paths(rec.model_, rec.emb_, rec._scope_.index(
                rec.explain_history), frame, max_paths=max_paths)
            explain_parts.append(path_records(paths))
    out_path = sink.close() if sink is not None else None
    exp_path = None
    if explain_to is not None:
        exp_path = _write_table(pd.concat(explain_parts, ignore_index=True)
                                if explain_parts else path_records(top_paths(
                                    rec.model_, rec.emb_, rec._scope_.index(
                                        rec.explain_history),
                                    pd.DataFrame(columns=["user_id", "item_id"]))),
                                Path(explain_to))
    return CandidateRun(rows=n_rows, users=len(rows), parquet=out_path, store_edges=n_edges,
                        explanations=exp_path, model_version=version, created_at=created,
                        seconds=time.perf_counter() - start)



def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    tmp.replace(path)
    return path


