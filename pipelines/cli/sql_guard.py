"""What a `leo-fleet sql` query may read: an allowlist checked on DuckDB's own parse tree before anything runs.

A query may name the lake's tables and views, DuckDB's catalog views (information_schema, pg_catalog,
duckdb_tables, ...), CTEs it defines, the lake's table macros and the table functions of PURE_TABLE_FUNCTIONS.
Every other table function (sqlite_scan, read_csv, glob, query_table, ducklake_*, ...) is refused. Why not rely on
the session settings alone: `enable_external_access = false` still lets table functions read below the allowed
data path, and the sqlite extension ignores it (sqlite_scan read any SQLite file the user could read). A table
name that no catalog holds would become a replacement scan (`FROM 'notes.csv'` reads the file), so every table
name must resolve to an existing relation or to a CTE in scope; so must each argument the lake's macros hand to
query_table. Scalar, aggregate and window functions compute on values and are not restricted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from ingest.lake import LAKE_ALIAS
from pipelines.cli.errors import CliError

if TYPE_CHECKING:
    import duckdb

# Table functions that compute rows from their arguments or list the catalog; none opens a file or a database.
PURE_TABLE_FUNCTIONS = frozenset(
    {
        "generate_series",
        "range",
        "unnest",
        "repeat",
        "repeat_row",
        "json_each",
        "json_tree",
        "pg_timezone_names",
        "icu_calendar_names",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
    }
)
SYSTEM = "system"  # DuckDB's built-in catalog: its views describe the catalog and read nothing else
# Catalog and schemas an unqualified name is looked up in (DuckDB's search path; temp and memory hold nothing).
_SEARCH_PATH = ((LAKE_ALIAS, "main"), (SYSTEM, "main"), (SYSTEM, "pg_catalog"))
_TABLE_REFS = frozenset(
    {"BASE_TABLE", "TABLE_FUNCTION", "SHOW_REF", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "PIVOT"}
)
_IDENTIFIER = re.compile(r"\w+")
Name = tuple[str, str, str]  # catalog, schema, name; lower case, "" where the query leaves it out


@dataclass(frozen=True)
class Macro:
    parameters: tuple[str, ...]
    body: str  # the SQL of the macro's query


class Guard:
    """What one input may name in the lake session: relations and table macros, each read when a query first
    needs them; `check` walks one statement."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._relation_parameters: dict[Name, frozenset[str]] = {}

    @cached_property
    def relations(self) -> frozenset[Name]:
        rows = self.con.execute(
            """SELECT database_name, schema_name, table_name FROM duckdb_tables() WHERE database_name IN ($1, $2)
               UNION ALL
               SELECT database_name, schema_name, view_name FROM duckdb_views() WHERE database_name IN ($1, $2)""",
            [LAKE_ALIAS, SYSTEM],
        ).fetchall()
        return frozenset(tuple(part.lower() for part in row) for row in rows)

    @cached_property
    def macros(self) -> dict[Name, Macro]:
        rows = self.con.execute(
            """SELECT schema_name, function_name, parameters, macro_definition FROM duckdb_functions()
               WHERE database_name = $1 AND function_type = 'table_macro'""",
            [LAKE_ALIAS],
        ).fetchall()
        return {
            (LAKE_ALIAS, schema.lower(), name.lower()): Macro(tuple(p.lower() for p in parameters), body)
            for schema, name, parameters, body in rows
        }

    def check(self, sql: str) -> None:
        """Refuse `sql` (one query) in one line unless everything it reads is on the allowlist."""
        try:
            for tree in parse(self.con, sql):
                self._visit(tree, frozenset())
        except RecursionError:  # hundreds of nested subqueries or brackets: deeper than Python's stack
            raise CliError("refused: the query nests too deeply to be checked") from None

    def _visit(self, node: object, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self._visit(item, ctes)
            return
        if not isinstance(node, dict):
            return
        if "cte_map" in node:  # a CTE sees the ones before it (and itself when recursive); the body sees all
            entries = node["cte_map"]["map"]
            names = [entry["key"].lower() for entry in entries]
            for i, entry in enumerate(entries):
                query = entry["value"]["query"]
                own = {names[i]} if query["node"]["type"] == "RECURSIVE_CTE_NODE" else set()
                self._visit(query, ctes | set(names[:i]) | own)
            ctes = ctes | set(names)
        if _is_table_reference(node):
            if node["type"] not in _TABLE_REFS:
                raise CliError(f"refused: {node['type'].lower()} table references do not run here")
            if node["type"] == "BASE_TABLE":
                self._relation((node["catalog_name"], node["schema_name"], node["table_name"]), ctes)
            elif node["type"] == "TABLE_FUNCTION":
                self._table_function(node["function"], ctes)
        for key, value in node.items():
            if key != "cte_map":
                self._visit(value, ctes)

    def _relation(self, name: tuple[str, str, str], ctes: frozenset[str]) -> None:
        catalog, schema, table = (part.lower() for part in name)
        if not catalog and not schema and table in ctes:
            return
        if not any(candidate in self.relations for candidate in _candidates(catalog, schema, table)):
            shown = ".".join(part for part in name if part)
            raise CliError(f"refused: {shown} is not a table or view of the lake (see .tables)")

    def _table_function(self, call: dict, ctes: frozenset[str]) -> None:
        name = call["function_name"]
        builtin = call["catalog"].lower() in ("", SYSTEM) and call["schema"].lower() in ("", "main")
        if self._macro(call) is None and not (builtin and name.lower() in PURE_TABLE_FUNCTIONS):
            raise CliError(f"refused: {name}() is not on the allowlist (the lake's macros, DuckDB's pure functions)")
        for argument in self._relation_arguments(call):
            self._relation(_relation_name(argument, name), ctes)

    def _macro(self, call: dict) -> Name | None:
        names = _candidates(call["catalog"].lower(), call["schema"].lower(), call["function_name"].lower())
        return next((name for name in names if name in self.macros), None)

    def _relation_arguments(self, call: dict) -> list[dict]:
        """The arguments of a table function call that name a relation: query_table's, a macro's relation ones."""
        if call["function_name"].lower() == "query_table":
            return call["children"][:1]
        macro = self._macro(call)
        if macro is None:
            return []
        relations = self.relation_parameters(macro)
        positional = (*self.macros[macro].parameters, *[""] * len(call["children"]))
        return [
            argument
            for argument, parameter in zip(call["children"], positional, strict=False)
            if (argument["alias"].lower() or parameter) in relations
        ]

    def relation_parameters(self, name: Name) -> frozenset[str]:
        """A macro's parameters that reach query_table, directly or through another of the lake's macros."""
        if name not in self._relation_parameters:
            self._relation_parameters[name] = frozenset()  # ends a cycle (DuckDB refuses recursive macros anyway)
            macro = self.macros[name]
            found = {
                ref["column_names"][0].lower()
                for call in _walk(parse(self.con, macro.body), "TABLE_FUNCTION")
                for argument in self._relation_arguments(call["function"])
                for ref in _walk(argument, "COLUMN_REF")
            }
            self._relation_parameters[name] = frozenset(found & set(macro.parameters))
        return self._relation_parameters[name]


def parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    """DuckDB's parse tree of each statement of `sql`; only queries (SELECT, FROM, VALUES, SHOW, ...) have one."""
    tree = json.loads(con.execute("SELECT json_serialize_sql($1)", [sql]).fetchone()[0])
    if tree["error"]:
        raise CliError(f"refused: only queries run here ({tree['error_message']})")
    return tree["statements"]


def _is_table_reference(node: dict) -> bool:
    return "sample" in node and "alias" in node  # query nodes have no alias, expressions no sample


def _candidates(catalog: str, schema: str, name: str) -> list[Name]:
    """Where DuckDB may find `catalog.schema.name` (catalog and schema may be left out)."""
    if catalog:
        return [(catalog, schema or "main", name)]
    if schema:
        return [(LAKE_ALIAS, schema, name), (SYSTEM, schema, name), (schema, "main", name)]
    return [(c, s, name) for c, s in _SEARCH_PATH]


def _relation_name(argument: dict, macro: str) -> tuple[str, str, str]:
    """The relation a macro argument names: an identifier (`reads`, `raw.latency`) or a string ('raw.latency')."""
    if argument["class"] == "COLUMN_REF":
        parts = argument["column_names"]
    elif argument["class"] == "CONSTANT" and argument["value"]["type"]["id"] == "VARCHAR":
        parts = str(argument["value"]["value"]).split(".")
    else:
        parts = []
    if not 1 <= len(parts) <= 3 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        raise CliError(f"refused: {macro}() takes the name of a table, view or CTE of the lake")
    catalog, schema, name = ["", "", *parts][-3:]
    return catalog, schema, name


def _walk(node: object, kind: str) -> Iterator[dict]:
    """Every dict of type `kind` in a parse tree."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, kind)
    elif isinstance(node, dict):
        if node.get("type") == kind:
            yield node
        for value in node.values():
            yield from _walk(value, kind)
