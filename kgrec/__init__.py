"""kgrec: a knowledge-graph cold-start recommender for e-commerce.

The graph (users, items, brands, categories, attributes, interactions) lives in Neo4j or in an
embedded store; item text is embedded with a BERT-family encoder; a heterogeneous GNN trained
jointly with a CTR head scores new items and new users from their graph neighbourhood.
"""

from kgrec._version import __version__
from kgrec.errors import (
    ColdStartWarning,
    ConfigError,
    DataError,
    EncoderError,
    FileFormatError,
    IncompatibleModelError,
    KgrecError,
    ModelError,
    ModelNotFoundError,
    Neo4jServerError,
    NotFittedError,
    StoreError,
    StoreUnavailableError,
    UnknownIdError,
    ValidationError,
)
from kgrec.graph.adapters import load_dataset
from kgrec.graph.embedded import EmbeddedGraphStore
from kgrec.graph.export import ExportedGraph, to_hetero_data
from kgrec.graph.ingest import IngestReport, ingest, ingest_tables
from kgrec.graph.neo4j_server import Neo4jServer
from kgrec.graph.neo4j_store import Neo4jGraphStore, driver_from_env
from kgrec.graph.open import open_store
from kgrec.graph.pseudonym import Pseudonymizer
from kgrec.graph.readers import RawCatalog, read_catalog, read_table
from kgrec.graph.schema import NodeLabel, RelType
from kgrec.graph.store import GraphStore, graph_stats, read_graph
from kgrec.graph.synthetic import SyntheticCatalog, generate_catalog
from kgrec.graph.tables import CatalogTables
from kgrec.graph.validate import ValidationResult, validate_catalog

__all__ = [
    "CatalogTables",
    "ColdStartWarning",
    "ConfigError",
    "DataError",
    "EmbeddedGraphStore",
    "EncoderError",
    "ExportedGraph",
    "FileFormatError",
    "GraphStore",
    "IncompatibleModelError",
    "IngestReport",
    "KgrecError",
    "ModelError",
    "ModelNotFoundError",
    "Neo4jGraphStore",
    "Neo4jServer",
    "Neo4jServerError",
    "NodeLabel",
    "NotFittedError",
    "Pseudonymizer",
    "RawCatalog",
    "RelType",
    "StoreError",
    "StoreUnavailableError",
    "SyntheticCatalog",
    "UnknownIdError",
    "ValidationError",
    "ValidationResult",
    "__version__",
    "driver_from_env",
    "generate_catalog",
    "graph_stats",
    "ingest",
    "ingest_tables",
    "load_dataset",
    "open_store",
    "read_catalog",
    "read_graph",
    "read_table",
    "to_hetero_data",
    "validate_catalog",
]
