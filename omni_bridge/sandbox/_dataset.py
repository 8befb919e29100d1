"""The sandbox's demo data: a small apparel shop in SQLite, the same rows on every build.

Answers from the sandbox have to be reproducible (tests compare numbers, demos quote them), so everything here
comes from one `random.Random(seed)` and a fixed "today", never the wall clock or the global generator. The data
still has to look like a business when charted, so orders grow year over year, peak around the holidays, and
coats sell in winter while dresses sell in summer.

The catalog's names (categories, brands, products, regions, states, statuses) are module constants because the
semantic model embeds them for the question parser, which has no database connection.
"""

from __future__ import annotations

import bisect
import math
import random
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

__all__ = [
    "BRANDS",
    "CATEGORIES",
    "DATA_END",
    "DATA_START",
    "DEFAULT_TODAY",
    "PRODUCT_NAMES",
    "REGIONS",
    "REGION_STATES",
    "STATES",
    "STATUSES",
    "TABLES",
    "build_database",
    "row_counts",
]

_T = TypeVar("_T")

DEFAULT_TODAY: date = date(2026, 11, 1)
"""The sandbox's fixed "today": relative dates in questions ("last quarter") are resolved against it."""
DATA_START: date = date(2024, 1, 1)
DATA_END: date = DEFAULT_TODAY - timedelta(days=1)

REGION_STATES: dict[str, tuple[str, ...]] = {
    "West": ("California", "Washington", "Oregon", "Arizona", "Colorado", "Nevada", "Utah"),
    "East": ("New York", "Pennsylvania", "New Jersey", "Massachusetts", "Virginia", "Maryland"),
    "Central": ("Illinois", "Ohio", "Michigan", "Minnesota", "Wisconsin", "Missouri"),
    "South": ("Texas", "Florida", "Georgia", "North Carolina", "Tennessee", "Louisiana"),
}
REGIONS: tuple[str, ...] = tuple(REGION_STATES)
STATES: tuple[str, ...] = tuple(state for states in REGION_STATES.values() for state in states)
STATUSES: tuple[str, ...] = ("complete", "returned", "cancelled")

# Category -> (price range, style names). Jeans styles get " Jeans" appended so names read naturally.
_CATEGORY_SPECS: dict[str, tuple[tuple[float, float], tuple[str, ...]]] = {
    "Jeans": ((45, 120), ("Slim Jeans", "Straight Jeans", "Relaxed Jeans", "Bootcut Jeans", "Skinny Jeans")),
    "Tops & Tees": ((15, 45), ("Crew Tee", "V-Neck Tee", "Henley", "Tank Top", "Polo Shirt")),
    "Outerwear": ((85, 260), ("Puffer Jacket", "Rain Shell", "Denim Jacket", "Wool Coat", "Fleece Jacket")),
    "Shoes": ((55, 180), ("Running Shoe", "Leather Boot", "Canvas Sneaker", "Loafer", "Trail Shoe")),
    "Accessories": ((12, 65), ("Leather Belt", "Beanie", "Tote Bag", "Sunglasses", "Baseball Cap")),
    "Activewear": ((25, 95), ("Yoga Legging", "Track Pant", "Sports Bra", "Training Short", "Running Tight")),
    "Sweaters": ((40, 140), ("Cable Knit Sweater", "Crewneck Sweater", "Cardigan", "Hoodie", "Quarter-Zip")),
    "Dresses": ((35, 160), ("Wrap Dress", "Maxi Dress", "Shirt Dress", "Slip Dress", "Sundress")),
}
CATEGORIES: tuple[str, ...] = tuple(_CATEGORY_SPECS)

# Brand -> price multiplier, so premium brands cost more across every category.
_BRAND_PREMIUM: dict[str, float] = {
    "Acme": 0.85,
    "Northwind": 1.0,
    "Bluebird": 0.9,
    "Summit Supply": 1.2,
    "Harbor Lane": 1.1,
    "Redwood": 1.0,
    "Cobalt": 0.95,
    "Juniper": 1.15,
    "Meridian": 1.35,
    "Fieldstone": 1.05,
}
BRANDS: tuple[str, ...] = tuple(_BRAND_PREMIUM)

# Each brand carries 3 of a category's 5 styles, rotated by brand, so 8 x 10 x 3 = 240 fixed product names.
_PRODUCTS: tuple[tuple[str, int, int, str], ...] = tuple(
    (f"{brand} {styles[(b + k) % len(styles)]}", c, b, category)
    for c, (category, (_, styles)) in enumerate(_CATEGORY_SPECS.items())
    for b, brand in enumerate(BRANDS)
    for k in range(3)
)
PRODUCT_NAMES: tuple[str, ...] = tuple(name for name, *_ in _PRODUCTS)

TABLES: tuple[str, ...] = (
    "categories",
    "brands",
    "products",
    "customers",
    "orders",
    "order_items",
    "customer_facts",
)

_MONTH_SEASON = (0.85, 0.8, 0.95, 1.0, 1.05, 1.0, 0.95, 1.05, 0.95, 1.0, 1.35, 1.5)
_WINTER = (1.6, 1.3, 0.9, 0.6, 0.4, 0.3, 0.3, 0.5, 0.9, 1.4, 1.8, 1.9)
_SUMMER = (0.5, 0.6, 0.9, 1.2, 1.5, 1.7, 1.7, 1.4, 1.0, 0.7, 0.6, 0.7)
_CATEGORY_SEASON: dict[str, tuple[float, ...]] = {"Outerwear": _WINTER, "Sweaters": _WINTER, "Dresses": _SUMMER}
_REGION_WEIGHTS = (31, 27, 18, 24)  # West, East, Central, South: regional totals differ, which the RLS tests rely on
# States are listed most populous first (California, New York, ...), so earlier states get more buyers.
_STATE_WEIGHTS: dict[str, tuple[int, ...]] = {
    region: tuple(len(states) + 3 - i for i in range(len(states))) for region, states in REGION_STATES.items()
}
_FIRST_NAMES = (
    "Ava", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Sophia", "Elijah", "Isabella", "Lucas", "Mia", "Ethan",
    "Amelia", "James", "Harper", "Benjamin", "Evelyn", "Henry", "Aria", "Leo", "Chloe", "Daniel", "Priya", "Wei",
    "Fatima", "Diego", "Hana", "Omar", "Grace", "Jamal",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Nguyen", "Patel", "Brown", "Kim", "Martinez", "Lee", "Davis", "Lopez", "Wilson",
    "Anderson", "Thomas", "Chen", "Moore", "Jackson", "Martin", "Okafor", "Rossi", "Cohen", "Schmidt", "Tanaka",
    "Walker", "Young", "Hughes", "Reyes", "Foster", "Silva", "Novak",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE brands (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE products (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, category_id INTEGER NOT NULL REFERENCES categories(id),
    brand_id INTEGER NOT NULL REFERENCES brands(id), retail_price REAL NOT NULL, cost REAL NOT NULL
);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, region TEXT NOT NULL, state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), created_at TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL, sale_price REAL NOT NULL
);
"""

# Built after the bulk insert (cheaper than maintaining them row by row); they serve the topics' joins and filters.
_INDEXES_AND_FACTS = """
CREATE INDEX ix_orders_created_at ON orders(created_at);
CREATE INDEX ix_orders_customer_id ON orders(customer_id);
CREATE INDEX ix_order_items_order_id ON order_items(order_id);
CREATE INDEX ix_order_items_product_id ON order_items(product_id);
CREATE INDEX ix_customers_region ON customers(region);
CREATE TABLE customer_facts AS
SELECT orders.customer_id AS customer_id,
       COUNT(DISTINCT orders.id) AS order_count,
       MIN(orders.created_at) AS first_order_date,
       ROUND(SUM(CASE WHEN orders.status = 'complete' THEN order_items.quantity * order_items.sale_price ELSE 0 END),
             2) AS lifetime_revenue
FROM orders JOIN order_items ON order_items.order_id = orders.id
GROUP BY orders.customer_id;
CREATE UNIQUE INDEX ix_customer_facts_customer_id ON customer_facts(customer_id);
"""


@dataclass(frozen=True, slots=True)
class _Rows:
    products: list[tuple[int, str, int, int, float, float]]
    customers: list[tuple[int, str, str, str, str, str]]
    orders: list[tuple[int, int, str, str]]
    order_items: list[tuple[int, int, int, int, float]]


def build_database(path: str | None = None, *, seed: int = 7) -> sqlite3.Connection:
    """Build the demo database and return a connection to it.

    Args:
        path: a SQLite file to (re)build; existing sandbox tables in it are dropped first. `None` builds in memory.
        seed: the generator's seed; the same seed always gives the same rows.

    Returns:
        A connection opened with `check_same_thread=False`, so a server may share it across threads.
    """
    rows = _generate(random.Random(seed))
    conn = sqlite3.connect(":memory:" if path is None else path, check_same_thread=False)
    with conn:
        conn.execute("BEGIN")  # one transaction for the whole build: DDL included, so a failed build leaves nothing
        for table in reversed(TABLES):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        _run_script(conn, _SCHEMA)
        conn.executemany("INSERT INTO categories VALUES (?, ?)", list(enumerate(CATEGORIES, start=1)))
        conn.executemany("INSERT INTO brands VALUES (?, ?)", list(enumerate(BRANDS, start=1)))
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)", rows.products)
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", rows.customers)
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows.orders)
        conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", rows.order_items)
        _run_script(conn, _INDEXES_AND_FACTS)
    return conn


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per sandbox table, in `TABLES` order."""
    return {table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) for table in TABLES}


def _generate(rng: random.Random) -> _Rows:
    products: list[tuple[int, str, int, int, float, float]] = []
    for product_id, (name, category_index, brand_index, category) in enumerate(_PRODUCTS, start=1):
        (low, high), _ = _CATEGORY_SPECS[category]
        # Prices end in .99 like a real shop; cost is 38-58% of retail so margins differ by product.
        retail = round(max(round(rng.uniform(low, high) * _BRAND_PREMIUM[BRANDS[brand_index]]), 5) - 0.01, 2)
        cost = round(retail * rng.uniform(0.38, 0.58), 2)
        products.append((product_id, name, category_index + 1, brand_index + 1, retail, cost))
    popularity = [rng.uniform(0.3, 3.0) for _ in products]
    # Cumulative product weights per calendar month, so seasonal categories swing without per-row arithmetic.
    month_weights = []
    for month in range(12):
        weights = [
            popularity[i] * _CATEGORY_SEASON.get(category, (1.0,) * 12)[month]
            for i, (_, _, _, category) in enumerate(_PRODUCTS)
        ]
        month_weights.append(_cumulative(weights))

    customers: list[tuple[int, str, str, str, str, str]] = []
    orders: list[tuple[int, int, str, str]] = []
    items: list[tuple[int, int, int, int, float]] = []
    product_ids = [p[0] for p in products]
    prices = {p[0]: p[4] for p in products}
    span_days = (DATA_END - DATA_START).days
    day = DATA_START
    while day <= DATA_END:
        day_text = day.isoformat()
        growth = 1.0 + 0.3 * (day - DATA_START).days / 365.0
        weekend = 1.15 if day.weekday() >= 5 else 1.0
        mean = 24.0 * growth * _MONTH_SEASON[day.month - 1] * weekend
        order_count = max(0, round(rng.gauss(mean, math.sqrt(mean))))
        if rng.random() < 0.5:  # someone signs up without buying, so "customers" differs from "buyers"
            _new_customer(rng, customers, day_text)
        cum_weights = month_weights[day.month - 1]
        for _ in range(order_count):
            if len(customers) < 200 or rng.random() < 0.24:
                customer_id = _new_customer(rng, customers, day_text)
            else:
                customer_id = rng.randint(1, len(customers))
            order_id = len(orders) + 1
            status = _pick(rng, STATUSES, (85, 94, 100))
            orders.append((order_id, customer_id, day_text, status))
            line_count = _pick(rng, (1, 2, 3, 4), (50, 80, 94, 100))
            for product_id in rng.choices(product_ids, cum_weights=cum_weights, k=line_count):
                quantity = _pick(rng, (1, 2, 3), (82, 96, 100))
                discount = _pick(rng, (1.0, 0.9, 0.8, 0.7), (70, 85, 95, 100))
                items.append((len(items) + 1, order_id, product_id, quantity, round(prices[product_id] * discount, 2)))
        day += timedelta(days=1)
    assert span_days > 730, "the data must cover at least two full years"
    return _Rows(products, customers, orders, items)


def _new_customer(rng: random.Random, customers: list[tuple[int, str, str, str, str, str]], day: str) -> int:
    customer_id = len(customers) + 1
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    region = rng.choices(REGIONS, weights=_REGION_WEIGHTS)[0]
    state = rng.choices(REGION_STATES[region], weights=_STATE_WEIGHTS[region])[0]
    email = f"{first}.{last}{customer_id}@example.com".lower()
    customers.append((customer_id, f"{first} {last}", email, region, state, day))
    return customer_id


def _pick(rng: random.Random, values: tuple[_T, ...], cumulative_percent: tuple[int, ...]) -> _T:
    # `rng.choices(..., weights=...)` re-accumulates the weights on every call; this runs ~200k times per build.
    return values[bisect.bisect(cumulative_percent, rng.random() * 100)]


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # `executescript` would commit the open transaction first; running statements one by one keeps the build atomic.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _cumulative(weights: list[float]) -> list[float]:
    total = 0.0
    out = []
    for weight in weights:
        total += weight
        out.append(total)
    return out
