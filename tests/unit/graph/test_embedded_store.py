from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.errors import StoreError, ValidationError
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.ingest import ingest_tables
from kgrec.graph.schema import NodeLabel, RelType, check_label, check_rel_type
from tests.contract import StoreContract, pseudonymizer, tiny_catalog


class TestEmbeddedStoreContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> EmbeddedGraphStore:
        return EmbeddedGraphStore(tmp_path / "store")


def test_store_persists_across_instances(tmp_path: Path) -> None:
    ingest_tables(tiny_catalog(), EmbeddedGraphStore(tmp_path), pseudonymizer())
    again = EmbeddedGraphStore(tmp_path)
    assert len(again.nodes(NodeLabel.ITEM)) == 3
    assert len(again.edges(RelType.INTERACTED)) == 5


def test_corrupt_file_is_a_store_error(tmp_path: Path) -> None:
    store = EmbeddedGraphStore(tmp_path)
    ingest_tables(tiny_catalog(), store, pseudonymizer())
    (tmp_path / "nodes" / "Item.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="corrupt"):
        EmbeddedGraphStore(tmp_path).nodes(NodeLabel.ITEM)


def test_edges_to_missing_nodes_raise(tmp_path: Path) -> None:
    import pandas as pd
    store = EmbeddedGraphStore(tmp_path)
    with pytest.raises(StoreError, match="write the nodes first"):
        store.upsert_edges(RelType.HAS_BRAND, pd.DataFrame(
            {"src_label": ["Item"], "src": ["x"], "dst_label": ["Brand"], "dst": ["y"]}))


def test_networkx_view(tmp_path: Path) -> None:
    store = EmbeddedGraphStore(tmp_path)
    ingest_tables(tiny_catalog(), store, pseudonymizer())
    g = store.to_networkx()
    assert g.has_edge(("Item", "sku-1"), ("Brand", "Acme"))
    assert g.nodes[("Item", "sku-3")]["title"] == "Coffee mug"


@pytest.mark.parametrize("bad", ["Person", "User) DETACH DELETE (n", ""])
def test_labels_outside_the_allow_list_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="unknown node label"):
        check_label(bad)
    with pytest.raises(ValidationError, match="unknown relationship type"):
        check_rel_type(bad)


def test_a_second_store_object_sees_rows_written_by_the_first(tmp_path: Path) -> None:
    import pandas as pd

    one, two = EmbeddedGraphStore(tmp_path), EmbeddedGraphStore(tmp_path)
    one.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["a"]}))
    assert list(two.nodes(NodeLabel.ITEM)["id"]) == ["a"]  # now cached in `two`
    one.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["b"]}))
    two.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["c"]}))  # must not drop "b"
    assert sorted(one.nodes(NodeLabel.ITEM)["id"]) == ["a", "b", "c"]


def test_a_held_writer_lock_times_out_as_store_error(tmp_path: Path) -> None:
    import filelock
    import pandas as pd

    from kgrec.graph.embedded import LOCK_FILE

    store = EmbeddedGraphStore(tmp_path, lock_timeout=0.2)
    with filelock.FileLock(tmp_path / LOCK_FILE, thread_local=False), \
            pytest.raises(StoreError, match="another process .* lock_timeout"):
        store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["a"]}))
    store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["a"]}))  # free again
    assert len(store.nodes(NodeLabel.ITEM)) == 1


def test_stale_temp_file_of_a_dead_writer_is_removed(tmp_path: Path) -> None:
    import pandas as pd

    store = EmbeddedGraphStore(tmp_path)
    store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["a"]}))
    stale = tmp_path / "nodes" / ".Item.parquet.abc123.kgrec-tmp"
    stale.write_bytes(b"half a parquet file")
    assert list(EmbeddedGraphStore(tmp_path).nodes(NodeLabel.ITEM)["id"]) == ["a"]
    store.upsert_nodes(NodeLabel.ITEM, pd.DataFrame({"id": ["b"]}))
    assert not stale.exists()
