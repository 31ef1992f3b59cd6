"""The burn-rate formula has one Python owner (models.slo.burn.burn_rate) and one SQL twin (the sre.burn_rate macro
of views.sql, which every SLO view uses): both give the same value on the same inputs, bit for bit."""

from __future__ import annotations

import math

import duckdb
import numpy as np

from models.slo.burn import burn_rate
from models.sql_macros import statements
from pipelines.sql import VIEWS_FILE

# (bad events, events, error budget): ordinary burns, exactly the budget, no events at all, more bad events than
# events (a malformed mart row must not be hidden), counts beyond 32 bits, and budgets from 99.99 % to 50 %.
CASES = [
    (0, 0, 0.001),
    (5, 0, 0.001),
    (0, 100, 0.001),
    (1, 1000, 0.001),
    (144, 10_000, 0.001),
    (10, 3, 0.005),
    (7, 123_456_789_012, 0.0001),
    (3_000_000_000, 9_000_000_000, 0.5),
    (1, 3, 1 - 99.9 / 100),
]


def sql_burn_rates() -> list[float | None]:
    (macro,) = [s for s in statements(VIEWS_FILE.read_text()) if "MACRO sre.burn_rate" in s]
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA sre")
        con.execute(macro)
        con.execute("CREATE TABLE cases (i INTEGER, bad BIGINT, events BIGINT, budget DOUBLE)")
        con.executemany("INSERT INTO cases VALUES (?, ?, ?, ?)", [(i, *case) for i, case in enumerate(CASES)])
        rows = con.execute("SELECT sre.burn_rate(bad, events, budget) FROM cases ORDER BY i").fetchall()
    finally:
        con.close()
    return [value for (value,) in rows]


def test_the_sql_macro_equals_the_python_function():
    bad, events, budget = (np.array(column) for column in zip(*CASES, strict=True))
    python = burn_rate(bad, events, budget).tolist()
    sql = sql_burn_rates()
    for case, from_python, from_sql in zip(CASES, python, sql, strict=True):
        if case[1] == 0:  # no events: unknown, NaN in Python and NULL in SQL, never 0
            assert math.isnan(from_python) and from_sql is None, case
        else:
            assert from_sql == from_python, case
    assert math.isclose(python[4], 14.4)  # 1.44 % errors against a 0.1 % budget: the Workbook's fastest page


def test_scalars_and_arrays_agree():
    """The evaluation calls it on (group × step) matrices, the report on single pooled figures."""
    for bad, events, budget in CASES:
        scalar = float(burn_rate(bad, events, budget))
        element = float(burn_rate(np.array([bad]), np.array([events]), budget)[0])
        assert scalar == element or (math.isnan(scalar) and math.isnan(element))
