"""What an asset shows in the Dagster UI: row counts, column schemas, Markdown tables and small PNG charts.

Every asset builds its metadata through these helpers, so the catalog looks the same everywhere. Charts are drawn
with matplotlib's Agg backend (no display in workers) and embedded as base64 PNG in Markdown; they live in
Dagster's event log, so they stay small (a few tens of KB).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence

import dagster as dg
import matplotlib
import pyarrow as pa
from tabulate import tabulate

from ingest.contract import DESCRIPTION

# The backend must be chosen before pyplot is imported.
matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

CHART_SIZE_IN = (7.0, 2.6)
CHART_DPI = 80
TABLE_ROWS = 10
MIN_SPAN_DAYS = 1 / 24  # the narrowest time axis: an hour (matplotlib's dates are in days)


def _type_name(data_type: pa.DataType) -> str:
    if pa.types.is_dictionary(data_type):
        return _type_name(data_type.value_type)
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    return str(data_type)


def column_schema(schema: pa.Schema, declared: dg.TableSchema | None = None) -> dg.TableSchema:
    """The catalog's column list for a table with this Arrow schema (`dagster/column_schema`), each column with
    the description its field carries (DESCRIPTION in the field's metadata, set where the schema is defined) or,
    for rows read back from the lake (which keeps no field metadata), the one `declared` (the asset's own column
    schema) gives the column of that name."""
    known = {column.name: column.description for column in declared.columns} if declared else {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=_type_name(field.type),
                description=(field.metadata or {}).get(DESCRIPTION, b"").decode() or known.get(field.name),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in schema
        ]
    )


def cell(value: object) -> object:
    """A table cell as people read it: floats to four significant digits, everything else as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def markdown_table(
    table: pa.Table,
    columns: Sequence[str] | None = None,
    limit: int = TABLE_ROWS,
    empty: str = "_no rows in this window_",
) -> dg.MetadataValue:
    """The first `limit` rows of `table` (already sorted worst first) as a Markdown table."""
    shown = table.select(list(columns or table.column_names)).slice(0, limit)
    rows = [[cell(v) for v in row.values()] for row in shown.to_pylist()]
    if not rows:
        return dg.MetadataValue.md(empty)
    return dg.MetadataValue.md(tabulate(rows, headers=shown.column_names, tablefmt="pipe"))


def count_by(table: pa.Table, keys: Sequence[str], aggregations: Mapping[str, str] | None = None) -> pa.Table:
    """Rows per distinct `keys` (column `rows`) plus `{column: function}` aggregates, most rows first."""
    aggregated = [f"{column}_{function}" for column, function in (aggregations or {}).items()]
    grouped = table.group_by(list(keys), use_threads=False).aggregate(
        [(keys[0], "count"), *(aggregations or {}).items()]
    )
    grouped = grouped.rename_columns(["rows" if n == f"{keys[0]}_count" else n for n in grouped.column_names])
    return grouped.select([*keys, "rows", *aggregated]).sort_by([("rows", "descending")])


def png(fig: plt.Figure) -> bytes:
    """A figure as PNG bytes (closing it, so workers do not accumulate open figures)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=CHART_DPI)
    plt.close(fig)
    return buffer.getvalue()


def image(title: str, data: bytes) -> dg.MetadataValue:
    """PNG bytes as Markdown metadata (inline base64), rendered by the materialization view."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(data).decode()})")


def time_axis(ax: Axes) -> None:
    """Compact date labels on the x axis (hours within a day, the date where it changes). Call it after plotting:
    data within one instant (one partition's hour) get an hour-wide axis, not matplotlib's default of years."""
    low, high = ax.dataLim.intervalx
    if math.isfinite(low) and math.isfinite(high) and high - low < MIN_SPAN_DAYS:  # (not on an empty chart)
        middle = (low + high) / 2
        ax.set_xlim(middle - MIN_SPAN_DAYS / 2, middle + MIN_SPAN_DAYS / 2)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def draw(title: str, plot: Callable[[Axes], None]) -> plt.Figure:
    """One small titled chart; `plot` fills the axes."""
    # Laid out when drawn (also after a resize), in the one drawing pass that saving makes.
    fig, ax = plt.subplots(figsize=CHART_SIZE_IN, layout="constrained")
    plot(ax)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def chart(title: str, plot: Callable[[Axes], None]) -> dg.MetadataValue:
    """A small chart as Markdown metadata."""
    return image(title, png(draw(title, plot)))
