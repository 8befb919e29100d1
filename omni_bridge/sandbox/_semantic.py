"""The sandbox's semantic model: Omni-style models, topics, measures, dimensions and data-access rules.

Omni answers questions through a semantic layer: a *model* holds *topics*, a topic is a
base view plus joins exposing named measures and dimensions, and the model's `access_grants` and each topic's
`access_filters` decide who may query what. This module is that layer for the demo shop in `_dataset`, written
as frozen dataclasses so it can be shared freely between threads and requests.

Field names follow Omni's `view.field` convention, with time grains in brackets (`orders.created_at[month]`).
Every SQL fragment here is trusted text written by us; user-supplied values never reach SQL except as bound
parameters (see `_query`). Dimensions carry their known values so the question parser, which has no database
connection, can recognise "in the West" or "for Jeans".

Revenue counts `complete` orders only (returns are refunded, cancellations never charged); so do units, average
order value and margins. Order and customer counts include every status, so "orders by status" works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from omni_bridge.sandbox._dataset import BRANDS, CATEGORIES, PRODUCT_NAMES, REGIONS, STATES, STATUSES

__all__ = [
    "MODELS",
    "AccessFilter",
    "AccessGrant",
    "Dimension",
    "Measure",
    "Model",
    "Topic",
    "get_model",
    "phrase_pattern",
]


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """A model-level grant: a user may reach what requires it when `user_attribute` holds an allowed value."""

    name: str
    user_attribute: str
    allowed_values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AccessFilter:
    """Row-level security on a topic: rows are limited to `field` IN the user's `user_attribute` values.

    A user whose attribute holds one of `values_for_unfiltered` sees every row.
    """

    field: str
    user_attribute: str
    values_for_unfiltered: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Measure:
    """An aggregate, such as `order_items.total_revenue`; `sql` is an aggregate expression over the topic's joins."""

    name: str
    label: str
    sql: str
    description: str
    value_type: Literal["number", "currency"]
    synonyms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dimension:
    """A group-by or filter column, such as `products.category` or `orders.created_at[month]`.

    `time_grain` is `date`, `month`, `quarter` or `year` for time dimensions, `None` otherwise. `values` lists the
    known values (for recognising them in questions) and `value_aliases` maps other wordings to one of them.
    """

    name: str
    label: str
    sql: str
    description: str
    synonyms: tuple[str, ...]
    time_grain: str | None = None
    values: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Topic:
    """A queryable subject: `from_sql` (base view plus joins) and the measures and dimensions it exposes.

    `time_field` names the date dimension that time filters ("last quarter") apply to; `None` means the topic
    has no dates.
    """

    name: str
    label: str
    description: str
    base_view: str
    measures: tuple[Measure, ...]
    dimensions: tuple[Dimension, ...]
    from_sql: str
    required_access_grants: tuple[str, ...] = ()
    access_filters: tuple[AccessFilter, ...] = ()
    sample_questions: tuple[str, ...] = ()
    time_field: str | None = None

    def measure(self, name: str) -> Measure:
        """The measure called `name`; raises `KeyError` naming the topic's measures if there is none."""
        for measure in self.measures:
            if measure.name == name:
                return measure
        known = ", ".join(m.name for m in self.measures)
        raise KeyError(f"Topic {self.name!r} has no measure {name!r}; its measures are: {known}")

    def dimension(self, name: str) -> Dimension:
        """The dimension called `name`; raises `KeyError` naming the topic's dimensions if there is none."""
        for dimension in self.dimensions:
            if dimension.name == name:
                return dimension
        known = ", ".join(d.name for d in self.dimensions)
        raise KeyError(f"Topic {self.name!r} has no dimension {name!r}; its dimensions are: {known}")

    def has_field(self, name: str) -> bool:
        """Whether `name` is one of the topic's measures or dimensions."""
        return any(m.name == name for m in self.measures) or any(d.name == name for d in self.dimensions)


@dataclass(frozen=True, slots=True)
class Model:
    """A shared model: its topics, the access grants they may require, and which topics the AI may use."""

    id: str
    name: str
    label: str
    topics: tuple[Topic, ...]
    access_grants: tuple[AccessGrant, ...] = ()
    ai_chat_topics: tuple[str, ...] | None = None
    query_all_views: bool = False
    description: str = field(default="")

    def topic(self, name: str) -> Topic:
        """The topic called `name`; raises `KeyError` naming the model's topics if there is none."""
        for topic in self.topics:
            if topic.name == name:
                return topic
        known = ", ".join(t.name for t in self.topics)
        raise KeyError(f"Model {self.name!r} has no topic {name!r}; its topics are: {known}")

    def access_grant(self, name: str) -> AccessGrant:
        """The access grant called `name`; raises `KeyError` if the model does not define it."""
        for grant in self.access_grants:
            if grant.name == name:
                return grant
        raise KeyError(f"Model {self.name!r} has no access grant {name!r}")


@lru_cache(maxsize=4096)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A case-insensitive pattern for `phrase` as whole words, also matching a simple plural (`-s`, `-es`).

    Lookarounds instead of `\\b` so phrases ending in punctuation ("margin %") still match.
    """
    words = r"\s+".join(re.escape(word) for word in phrase.lower().split())
    return re.compile(rf"(?<![\w]){words}(?:s|es)?(?![\w])", re.IGNORECASE)


# --- Shared building blocks ----------------------------------------------------------------------------------------

_SALES_JOINS = """order_items
JOIN orders ON orders.id = order_items.order_id
JOIN customers ON customers.id = orders.customer_id
JOIN products ON products.id = order_items.product_id
JOIN categories ON categories.id = products.category_id
JOIN brands ON brands.id = products.brand_id"""
_PRODUCT_JOINS = """products
JOIN categories ON categories.id = products.category_id
JOIN brands ON brands.id = products.brand_id"""
_CUSTOMER_JOINS = """customers
LEFT JOIN customer_facts ON customer_facts.customer_id = customers.id"""

_COMPLETE_REVENUE = "CASE WHEN orders.status = 'complete' THEN order_items.quantity * order_items.sale_price ELSE 0 END"
_COMPLETE_COST = "CASE WHEN orders.status = 'complete' THEN order_items.quantity * products.cost ELSE 0 END"
_REVENUE_SUM = f"SUM({_COMPLETE_REVENUE})"
_COST_SUM = f"SUM({_COMPLETE_COST})"
_REGION_RLS = AccessFilter("customers.region", "region", values_for_unfiltered=("all",))
FINANCE_ONLY = AccessGrant("finance_only", "omni_user_groups", ("Finance",))

_REVENUE = Measure(
    "order_items.total_revenue",
    "Total Revenue",
    _REVENUE_SUM,
    "Quantity x sale price of complete orders (returned and cancelled orders are excluded).",
    "currency",
    ("revenue", "total revenue", "sales", "sales amount", "total sales", "gmv", "net sales", "turnover"),
)
_SALES_MEASURES = (
    _REVENUE,
    Measure(
        "orders.count",
        "Order Count",
        "COUNT(DISTINCT orders.id)",
        "Number of orders placed, any status.",
        "number",
        ("orders", "order count", "number of orders", "how many orders", "order volume", "purchases", "transactions"),
    ),
    Measure(
        "order_items.total_units",
        "Units Sold",
        "SUM(CASE WHEN orders.status = 'complete' THEN order_items.quantity ELSE 0 END)",
        "Items sold in complete orders.",
        "number",
        ("units", "units sold", "items sold", "quantity", "quantity sold", "items", "unit sales"),
    ),
    Measure(
        "customers.count",
        "Customers",
        "COUNT(DISTINCT orders.customer_id)",
        "Distinct customers who placed an order, any status.",
        "number",
        ("customers", "unique customers", "buyers", "customer count", "number of customers", "shoppers"),
    ),
    Measure(
        "order_items.average_order_value",
        "Average Order Value",
        f"{_REVENUE_SUM} / NULLIF(COUNT(DISTINCT CASE WHEN orders.status = 'complete' THEN orders.id END), 0)",
        "Revenue divided by the number of complete orders.",
        "currency",
        ("average order value", "aov", "avg order value", "order value", "average order size", "basket size"),
    ),
    Measure(
        "products.count",
        "Products Sold",
        "COUNT(DISTINCT CASE WHEN orders.status = 'complete' THEN products.id END)",
        "Distinct products sold in complete orders.",
        "number",
        ("products sold", "how many products", "number of products", "product count", "distinct products"),
    ),
    Measure(
        "order_items.average_sale_price",
        "Average Selling Price",
        "AVG(order_items.sale_price)",
        "Average price paid per item, after discounts.",
        "currency",
        ("average selling price", "average sale price", "average price", "avg price", "asp", "price paid"),
    ),
)


def _time_dimensions(view_field: str, sql: str, noun: str) -> tuple[Dimension, ...]:
    """The date, month, quarter and year dimensions of one date column (stored as 'YYYY-MM-DD' text)."""
    month_number = f"CAST(substr({sql}, 6, 2) AS INTEGER)"
    return (
        Dimension(
            f"{view_field}[month]",
            f"{noun} Month",
            f"substr({sql}, 1, 7)",
            f"{noun} month, 'YYYY-MM'.",
            ("month", "monthly", "per month", "trend", "over time", "month by month"),
            "month",
        ),
        Dimension(
            f"{view_field}[quarter]",
            f"{noun} Quarter",
            f"substr({sql}, 1, 4) || '-Q' || (({month_number} + 2) / 3)",
            f"{noun} quarter, 'YYYY-Qn'.",
            ("quarter", "quarterly", "per quarter"),
            "quarter",
        ),
        Dimension(
            f"{view_field}[year]",
            f"{noun} Year",
            f"substr({sql}, 1, 4)",
            f"{noun} year, 'YYYY'.",
            ("year", "yearly", "annual", "annually", "per year", "year over year"),
            "year",
        ),
        Dimension(
            view_field,
            f"{noun} Date",
            sql,
            f"{noun} date, 'YYYY-MM-DD'; time filters apply to it.",
            ("day", "daily", "date", "per day"),
            "date",
        ),
    )


_PRODUCT_DIMENSIONS = (
    Dimension(
        "products.name",
        "Product",
        "products.name",
        "Product name.",
        ("product", "product name", "item name"),
        values=PRODUCT_NAMES,
    ),
    Dimension(
        "products.category",
        "Category",
        "categories.name",
        "Product category.",
        ("category", "categories", "product category", "department"),
        values=CATEGORIES,
        value_aliases=(
            ("tops", "Tops & Tees"),
            ("tees", "Tops & Tees"),
            ("t-shirts", "Tops & Tees"),
            ("tops and tees", "Tops & Tees"),
            ("jackets", "Outerwear"),
            ("coats", "Outerwear"),
            ("sneakers", "Shoes"),
            ("denim", "Jeans"),
        ),
    ),
    Dimension("products.brand", "Brand", "brands.name", "Product brand.", ("brand", "brand name"), values=BRANDS),
)
_GEO_DIMENSIONS = (
    Dimension(
        "customers.region",
        "Region",
        "customers.region",
        "Customer's US region.",
        ("region", "regions", "area"),
        values=REGIONS,
    ),
    Dimension(
        "customers.state", "State", "customers.state", "Customer's US state.", ("state", "states"), values=STATES
    ),
)
_STATUS_DIMENSION = Dimension(
    "orders.status",
    "Order Status",
    "orders.status",
    "complete, returned or cancelled.",
    ("status", "order status"),
    values=STATUSES,
    value_aliases=(
        ("returns", "returned"),
        ("canceled", "cancelled"),
        ("cancellations", "cancelled"),
        ("completed", "complete"),
    ),
)
_CUSTOMER_NAME = Dimension(
    "customers.name", "Customer", "customers.name", "Customer's name.", ("customer", "customer name")
)

# --- Topics -------------------------------------------------------------------------------------------------------

SALES_TOPIC = Topic(
    name="order_items",
    label="Sales",
    description="Every order line: revenue, orders, units and buyers by product, geography, status and date.",
    base_view="order_items",
    measures=_SALES_MEASURES,
    dimensions=(
        *_PRODUCT_DIMENSIONS,
        *_GEO_DIMENSIONS,
        _CUSTOMER_NAME,
        _STATUS_DIMENSION,
        *_time_dimensions("orders.created_at", "orders.created_at", "Order"),
    ),
    from_sql=_SALES_JOINS,
    access_filters=(_REGION_RLS,),
    sample_questions=(
        "What was revenue by month this year?",
        "Top 5 products by revenue last quarter",
        "Revenue and orders by region in 2025",
        "Average order value by category",
        "How many units of Jeans did we sell in California last 6 months?",
    ),
    time_field="orders.created_at",
)
CUSTOMERS_TOPIC = Topic(
    name="customers",
    label="Customers",
    description="Customer accounts: sign-ups, repeat buyers and lifetime revenue by region, state and sign-up date.",
    base_view="customers",
    measures=(
        Measure(
            "customers.count",
            "Customers",
            "COUNT(DISTINCT customers.id)",
            "Customer accounts; with a time filter, the customers who signed up in that period.",
            "number",
            (
                "customers",
                "customer count",
                "number of customers",
                "new customers",
                "signups",
                "sign ups",
                "sign-ups",
                "registrations",
                "accounts",
            ),
        ),
        Measure(
            "customers.repeat_customers",
            "Repeat Customers",
            "COUNT(DISTINCT CASE WHEN customer_facts.order_count >= 2 THEN customers.id END)",
            "Customers with two or more orders.",
            "number",
            ("repeat customers", "returning customers", "repeat buyers", "loyal customers"),
        ),
        Measure(
            "customers.average_lifetime_revenue",
            "Average Lifetime Revenue",
            "AVG(COALESCE(customer_facts.lifetime_revenue, 0))",
            "Average revenue per customer over all their complete orders.",
            "currency",
            ("lifetime value", "ltv", "clv", "customer lifetime value", "lifetime revenue"),
        ),
    ),
    dimensions=(
        *_GEO_DIMENSIONS,
        _CUSTOMER_NAME,
        *_time_dimensions("customers.created_at", "customers.created_at", "Signup"),
    ),
    from_sql=_CUSTOMER_JOINS,
    access_filters=(_REGION_RLS,),
    sample_questions=(
        "How many new customers signed up last quarter?",
        "New customers by month this year",
        "Repeat customers by region",
        "Customer lifetime value by state",
    ),
    time_field="customers.created_at",
)
MARGINS_TOPIC = Topic(
    name="product_margins",
    label="Margins",
    description="Gross margin and cost of complete orders by product, category, brand and date. Finance only.",
    base_view="order_items",
    measures=(
        Measure(
            "order_items.gross_margin",
            "Gross Margin",
            f"{_REVENUE_SUM} - {_COST_SUM}",
            "Revenue minus product cost, complete orders.",
            "currency",
            ("gross margin", "margin", "profit", "gross profit"),
        ),
        Measure(
            "order_items.total_cost",
            "Total Cost",
            _COST_SUM,
            "Product cost of items sold in complete orders.",
            "currency",
            ("cost", "total cost", "cogs", "cost of goods", "costs"),
        ),
        Measure(
            "order_items.margin_percent",
            "Gross Margin %",
            f"ROUND(100.0 * ({_REVENUE_SUM} - {_COST_SUM}) / NULLIF({_REVENUE_SUM}, 0), 1)",
            "Gross margin as a percentage of revenue.",
            "number",
            ("margin %", "margin percent", "margin percentage", "margin rate", "gross margin %", "margin pct"),
        ),
        _REVENUE,
    ),
    dimensions=(
        *_PRODUCT_DIMENSIONS,
        *_GEO_DIMENSIONS,
        *_time_dimensions("orders.created_at", "orders.created_at", "Order"),
    ),
    from_sql=_SALES_JOINS,
    required_access_grants=(FINANCE_ONLY.name,),
    access_filters=(_REGION_RLS,),
    sample_questions=(
        "Gross margin by category this year",
        "Margin % by brand in 2025",
        "Bottom 5 products by margin %",
    ),
    time_field="orders.created_at",
)
PRODUCTS_TOPIC = Topic(
    name="products",
    label="Product catalog",
    description="The product catalog: how many products and their average retail price, by category and brand.",
    base_view="products",
    measures=(
        Measure(
            "products.count",
            "Product Count",
            "COUNT(DISTINCT products.id)",
            "Products in the catalog.",
            "number",
            ("products", "product count", "number of products", "how many products", "skus", "catalog size"),
        ),
        Measure(
            "products.average_retail_price",
            "Average Retail Price",
            "AVG(products.retail_price)",
            "Average list price.",
            "currency",
            ("average retail price", "average price", "avg price", "retail price", "price", "list price"),
        ),
    ),
    dimensions=_PRODUCT_DIMENSIONS,
    from_sql=_PRODUCT_JOINS,
    sample_questions=("How many products per category?", "Average retail price by brand", "Products for Acme brand"),
)

# --- Models -------------------------------------------------------------------------------------------------------

ECOMMERCE = Model(
    id="6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f",
    name="ecommerce",
    label="E-commerce",
    topics=(SALES_TOPIC, CUSTOMERS_TOPIC, MARGINS_TOPIC),
    access_grants=(FINANCE_ONLY,),
    description="Orders, customers and margins of the demo apparel shop.",
)
INVENTORY = Model(
    id="a3b5c7d9-1e2f-4a6b-8c0d-2e4f6a8b0c1d",
    name="inventory",
    label="Inventory",
    topics=(PRODUCTS_TOPIC,),
    description="The demo shop's product catalog.",
)
MODELS: tuple[Model, ...] = (ECOMMERCE, INVENTORY)


def get_model(model_id: str) -> Model:
    """The model with id `model_id` (its name is accepted too); raises `KeyError` listing the known ids."""
    for model in MODELS:
        if model_id in (model.id, model.name):
            return model
    known = ", ".join(f"{m.id} ({m.name})" for m in MODELS)
    raise KeyError(f"No model with id {model_id!r}; known models: {known}")
