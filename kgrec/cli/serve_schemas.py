"""Request and response bodies of ``kgrec serve`` (pydantic), with the service's size limits.

Why limits here: every list and string a client sends is bounded before it reaches the model,
so one request cannot hold a scoring thread for minutes or fill memory; a body over a limit is
answered 422 by FastAPI with the field named. The same numbers are in the README.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_K = 1000                # items (or users) returned per user (or SKU)
MAX_USERS = 1000            # user ids in one request
MAX_ITEMS = 100_000         # candidate / scored item ids in one request
MAX_NEW_ITEMS = 1000        # new SKUs in one /rank-new-items request
MAX_ATTRIBUTES = 50         # profile values or extra attribute columns
MAX_CLICKS = 100            # clicks of a new user

Id = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=100_000)]
Short = Annotated[str, Field(max_length=2_000)]
K = Annotated[int, Field(ge=1, le=MAX_K)]

# Canonical item columns: an attribute may not shadow one of them.
ITEM_COLUMNS = ("item_id", "title", "description", "brand", "category", "price")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """Top-k items for known users (raw ids: pseudonymised inside, as in the Python API)."""

    user_ids: list[Id] = Field(min_length=1, max_length=MAX_USERS)
    k: K = 10
    candidates: list[Id] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    exclude_seen: bool = True


class ScoredItem(BaseModel):
    item_id: str
    score: float


class UserItems(BaseModel):
    user_id: str
    items: list[ScoredItem]


class RecommendResponse(BaseModel):
    model_version: str
    results: list[UserItems]


class NewItem(_Body):
    """One new SKU: canonical item fields plus extra attribute columns (``{"colour": "red"}``;
    several values joined by ``|``, as in the files ``kgrec ingest`` reads)."""

    item_id: Id
    title: Short | None = None
    description: Text | None = None
    brand: Annotated[str, Field(max_length=500)] | None = None
    category: Short | None = None
    price: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    attributes: dict[Annotated[str, Field(min_length=1, max_length=100)],
                     Annotated[str, Field(max_length=1_000)]] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES)

    @field_validator("attributes")
    @classmethod
    def _no_shadowing(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(value) & set(ITEM_COLUMNS))
        if bad:
            raise ValueError(f"attribute names {bad} are item fields; set them as fields")
        return value


class RankNewItemsRequest(_Body):
    """New SKUs (not in the graph) ranked without retraining.

    ``by="user"``: for each user in ``user_ids`` the best ``k`` new SKUs; ``by="item"``: for
    each new SKU the ``k`` likeliest users (among ``user_ids``, default every user of the
    graph, who are then named by their pseudonyms: the service never knows their raw ids).
    """

    items: list[NewItem] = Field(min_length=1, max_length=MAX_NEW_ITEMS)
    user_ids: list[Id] | None = Field(default=None, min_length=1, max_length=MAX_USERS)
    k: K = 10
    by: Literal["user", "item"] = "user"


class RankedRow(BaseModel):
    user_id: str
    item_id: str
    rank: int
    score: float


class RankNewItemsResponse(BaseModel):
    model_version: str
    by: Literal["user", "item"]
    rows: list[RankedRow]
    cold_items: list[str]


class NewUserRequest(_Body):
    """A user who is not in the graph: profile values and the first clicks (item ids)."""

    profile: dict[Annotated[str, Field(min_length=1, max_length=100)],
                  Annotated[str, Field(max_length=1_000)]] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES)
    clicks: list[Id] = Field(default_factory=list, max_length=MAX_CLICKS)
    k: K = 10
    exclude_seen: bool = True

    @field_validator("profile")
    @classmethod
    def _no_user_id(cls, value: dict[str, str]) -> dict[str, str]:
        if "user_id" in value:
            raise ValueError("user_id is not a profile value: a new user has no id here")
        return value


class NewUserResponse(BaseModel):
    model_version: str
    items: list[ScoredItem]
    cold: bool = Field(description="no known profile value and no clicks: the model's "
                                   "'unknown user' ranking")


class ScoreRequest(_Body):
    """Calibrated click probabilities of pairs ``(user_ids[n], item_ids[n])``; one side may be
    a single id (broadcast), as in ``Recommender.score``."""

    user_ids: list[Id] = Field(min_length=1, max_length=MAX_ITEMS)
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_ITEMS)


class ScoreResponse(BaseModel):
    model_version: str
    scores: list[float]


class ExplainRequest(_Body):
    user_id: Id
    item_id: Id
    max_paths: Annotated[int, Field(ge=1, le=20)] = 3


class ExplainResponse(BaseModel):
    model_version: str
    user_id: str = Field(description="the user's graph id (pseudonym)")
    item_id: str
    score: float
    paths: list[dict[str, object]]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str
    kgrec_version: str
    loaded_at: str
    reloads: int
    graph: dict[str, int] = Field(description="node count per label, plus interactions")


class ErrorBody(BaseModel):
    error: str = Field(description="the error type, e.g. UnknownIdError")
    message: str
