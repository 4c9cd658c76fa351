"""kgrec: a knowledge-graph cold-start recommender for e-commerce.

The graph (users, items, brands, categories, attributes, interactions) lives in Neo4j or in an
embedded store; item text is embedded with a BERT-family encoder; a heterogeneous GNN trained
jointly with a CTR head scores new items and new users from their graph neighbourhood.
"""

from typing import TYPE_CHECKING, Any

from kgrec._version import __version__

# Public names and the module that defines each. They are imported on first use (PEP 562) so
# that `import kgrec` and the CLI start fast; torch and transformers load only when needed.
_EXPORTS: dict[str, str] = {
    "BertTextEncoder": "kgrec.encoders",
    "CachedTextEncoder": "kgrec.encoders",
    "CandidateRun": "kgrec.ranking.candidates",
    "CatalogTables": "kgrec.graph.tables",
    "ColdStartModel": "kgrec.coldstart",
    "ColdStartWarning": "kgrec.errors",
    "ModelConfig": "kgrec.coldstart",
    "ConfigError": "kgrec.errors",
    "DataError": "kgrec.errors",
    "EmbeddedGraphStore": "kgrec.graph.embedded",
    "EmbeddingCache": "kgrec.encoders",
    "EncoderError": "kgrec.errors",
    "EvalConfig": "kgrec.evaluation.runner",
    "EvalResults": "kgrec.evaluation.runner",
    "Explanation": "kgrec.ranking.explain",
    "ExportedGraph": "kgrec.graph.export",
    "FileFormatError": "kgrec.errors",
    "GraphPath": "kgrec.ranking.explain",
    "GraphStore": "kgrec.graph.store",
    "HashingEncoder": "kgrec.encoders",
    "IncompatibleModelError": "kgrec.errors",
    "IngestReport": "kgrec.graph.ingest",
    "KeyMismatchError": "kgrec.errors",
    "KgrecError": "kgrec.errors",
    "ModelError": "kgrec.errors",
    "ModelNotFoundError": "kgrec.errors",
    "Neo4jGraphStore": "kgrec.graph.neo4j_store",
    "Neo4jServer": "kgrec.graph.neo4j_server",
    "Neo4jServerError": "kgrec.errors",
    "NewItemRanking": "kgrec.ranking.results",
    "NewUserRanking": "kgrec.ranking.results",
    "NodeEmbeddings": "kgrec.coldstart",
    "NodeLabel": "kgrec.graph.schema",
    "NotFittedError": "kgrec.errors",
    "PathNode": "kgrec.ranking.explain",
    "ProductSearch": "kgrec.ranking.search",
    "Pseudonymizer": "kgrec.graph.pseudonym",
    "RawCatalog": "kgrec.graph.readers",
    "Recommender": "kgrec.ranking.recommender",
    "RelType": "kgrec.graph.schema",
    "SearchFilters": "kgrec.ranking.search_index",
    "SearchResults": "kgrec.ranking.search",
    "SearchWeights": "kgrec.ranking.search",
    "StoreError": "kgrec.errors",
    "StoreUnavailableError": "kgrec.errors",
    "SyntheticCatalog": "kgrec.graph.synthetic",
    "TextEncoder": "kgrec.encoders",
    "UnknownIdError": "kgrec.errors",
    "ValidationError": "kgrec.errors",
    "ValidationResult": "kgrec.graph.validate",
    "compose_item_texts": "kgrec.encoders",
    "driver_from_env": "kgrec.graph.neo4j_store",
    "generate_catalog": "kgrec.graph.synthetic",
    "make_text_encoder": "kgrec.encoders",
    "graph_stats": "kgrec.graph.store",
    "ingest": "kgrec.graph.ingest",
    "ingest_tables": "kgrec.graph.ingest",
    "load_dataset": "kgrec.graph.adapters",
    "make_split": "kgrec.evaluation.splits",
    "open_store": "kgrec.graph.open",
    "read_catalog": "kgrec.graph.readers",
    "read_graph": "kgrec.graph.store",
    "read_table": "kgrec.graph.readers",
    "run_evaluation": "kgrec.evaluation.runner",
    "score_ranked": "kgrec.evaluation.scorerun",
    "to_hetero_data": "kgrec.graph.export",
    "validate_catalog": "kgrec.graph.validate",
    "write_report": "kgrec.evaluation.report",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from kgrec.coldstart import ColdStartModel as ColdStartModel
    from kgrec.coldstart import ModelConfig as ModelConfig
    from kgrec.coldstart import NodeEmbeddings as NodeEmbeddings
    from kgrec.encoders import BertTextEncoder as BertTextEncoder
    from kgrec.encoders import CachedTextEncoder as CachedTextEncoder
    from kgrec.encoders import EmbeddingCache as EmbeddingCache
    from kgrec.encoders import HashingEncoder as HashingEncoder
    from kgrec.encoders import TextEncoder as TextEncoder
    from kgrec.encoders import compose_item_texts as compose_item_texts
    from kgrec.encoders import make_text_encoder as make_text_encoder
    from kgrec.errors import ColdStartWarning as ColdStartWarning
    from kgrec.errors import ConfigError as ConfigError
    from kgrec.errors import DataError as DataError
    from kgrec.errors import EncoderError as EncoderError
    from kgrec.errors import FileFormatError as FileFormatError
    from kgrec.errors import IncompatibleModelError as IncompatibleModelError
    from kgrec.errors import KeyMismatchError as KeyMismatchError
    from kgrec.errors import KgrecError as KgrecError
    from kgrec.errors import ModelError as ModelError
    from kgrec.errors import ModelNotFoundError as ModelNotFoundError
    from kgrec.errors import Neo4jServerError as Neo4jServerError
    from kgrec.errors import NotFittedError as NotFittedError
    from kgrec.errors import StoreError as StoreError
    from kgrec.errors import StoreUnavailableError as StoreUnavailableError
    from kgrec.errors import UnknownIdError as UnknownIdError
    from kgrec.errors import ValidationError as ValidationError
    from kgrec.evaluation.report import write_report as write_report
    from kgrec.evaluation.runner import EvalConfig as EvalConfig
    from kgrec.evaluation.runner import EvalResults as EvalResults
    from kgrec.evaluation.runner import run_evaluation as run_evaluation
    from kgrec.evaluation.scorerun import score_ranked as score_ranked
    from kgrec.evaluation.splits import make_split as make_split
    from kgrec.graph.adapters import load_dataset as load_dataset
    from kgrec.graph.embedded import EmbeddedGraphStore as EmbeddedGraphStore
    from kgrec.graph.export import ExportedGraph as ExportedGraph
    from kgrec.graph.export import to_hetero_data as to_hetero_data
    from kgrec.graph.ingest import IngestReport as IngestReport
    from kgrec.graph.ingest import ingest as ingest
    from kgrec.graph.ingest import ingest_tables as ingest_tables
    from kgrec.graph.neo4j_server import Neo4jServer as Neo4jServer
    from kgrec.graph.neo4j_store import Neo4jGraphStore as Neo4jGraphStore
    from kgrec.graph.neo4j_store import driver_from_env as driver_from_env
    from kgrec.graph.open import open_store as open_store
    from kgrec.graph.pseudonym import Pseudonymizer as Pseudonymizer
    from kgrec.graph.readers import RawCatalog as RawCatalog
    from kgrec.graph.readers import read_catalog as read_catalog
    from kgrec.graph.readers import read_table as read_table
    from kgrec.graph.schema import NodeLabel as NodeLabel
    from kgrec.graph.schema import RelType as RelType
    from kgrec.graph.store import GraphStore as GraphStore
    from kgrec.graph.store import graph_stats as graph_stats
    from kgrec.graph.store import read_graph as read_graph
    from kgrec.graph.synthetic import SyntheticCatalog as SyntheticCatalog
    from kgrec.graph.synthetic import generate_catalog as generate_catalog
    from kgrec.graph.tables import CatalogTables as CatalogTables
    from kgrec.graph.validate import ValidationResult as ValidationResult
    from kgrec.graph.validate import validate_catalog as validate_catalog
    from kgrec.ranking.candidates import CandidateRun as CandidateRun
    from kgrec.ranking.explain import Explanation as Explanation
    from kgrec.ranking.explain import GraphPath as GraphPath
    from kgrec.ranking.explain import PathNode as PathNode
    from kgrec.ranking.recommender import Recommender as Recommender
    from kgrec.ranking.results import NewItemRanking as NewItemRanking
    from kgrec.ranking.results import NewUserRanking as NewUserRanking
    from kgrec.ranking.search import ProductSearch as ProductSearch
    from kgrec.ranking.search import SearchResults as SearchResults
    from kgrec.ranking.search import SearchWeights as SearchWeights
    from kgrec.ranking.search_index import SearchFilters as SearchFilters




def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kgrec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BertTextEncoder",
    "CachedTextEncoder",
    "CandidateRun",
    "CatalogTables",
    "ColdStartModel",
    "ColdStartWarning",
    "ConfigError",
    "DataError",
    "EmbeddedGraphStore",
    "EmbeddingCache",
    "EncoderError",
    "EvalConfig",
    "EvalResults",
    "Explanation",
    "ExportedGraph",
    "FileFormatError",
    "GraphPath",
    "GraphStore",
    "HashingEncoder",
    "IncompatibleModelError",
    "IngestReport",
    "KeyMismatchError",
    "KgrecError",
    "ModelConfig",
    "ModelError",
    "ModelNotFoundError",
    "Neo4jGraphStore",
    "Neo4jServer",
    "Neo4jServerError",
    "NewItemRanking",
    "NewUserRanking",
    "NodeEmbeddings",
    "NodeLabel",
    "NotFittedError",
    "PathNode",
    "ProductSearch",
    "Pseudonymizer",
    "RawCatalog",
    "Recommender",
    "RelType",
    "SearchFilters",
    "SearchResults",
    "SearchWeights",
    "StoreError",
    "StoreUnavailableError",
    "SyntheticCatalog",
    "TextEncoder",
    "UnknownIdError",
    "ValidationError",
    "ValidationResult",
    "__version__",
    "compose_item_texts",
    "driver_from_env",
    "generate_catalog",
    "graph_stats",
    "ingest",
    "ingest_tables",
    "load_dataset",
    "make_split",
    "make_text_encoder",
    "open_store",
    "read_catalog",
    "read_graph",
    "read_table",
    "run_evaluation",
    "score_ranked",
    "to_hetero_data",
    "validate_catalog",
    "write_report",
]
