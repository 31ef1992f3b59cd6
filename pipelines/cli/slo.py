"""`leo-fleet slo export|import`: the SLO spec for other SLO tools (pipelines/lib/slo_interop.py).

leo-fleet slo export --format openslo > slos.openslo.yaml   # every SLO, whole (import reads it back)
leo-fleet slo export --format sloth --out sloth/             # one Sloth spec per SLO period
leo-fleet slo import slos.openslo.yaml --out slos.yaml       # OpenSLO -> a spec `--slos` and evaluate read
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.cli.errors import CliError

FORMATS = ("openslo", "sloth")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "slo",
        help="export the SLO spec as OpenSLO or Sloth specs, or import one from OpenSLO",
        description="The SLO spec (slos.yaml) for other SLO tools: OpenSLO both ways, Sloth out.",
    )
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    export = actions.add_parser(
        "export",
        help="write the SLOs as OpenSLO documents or Sloth specs",
        description="OpenSLO v1 (every SLO whole) or Sloth prometheus/v1 (SLIs over `leo-fleet exporter`'s burn "
        "rates, one file per SLO period: run Sloth on each with --default-slo-period).",
    )
    export.add_argument("--format", choices=FORMATS, default="openslo", help="default: openslo")
    export.add_argument("--slos", type=Path, help="SLO spec file (default: the packaged one)")
    export.add_argument(
        "--out", type=Path, help="file to write (openslo; default stdout) or directory (sloth; default stdout)"
    )
    export.set_defaults(run=run_export)
    read = actions.add_parser(
        "import",
        help="turn OpenSLO SLO documents into a leo-fleet SLO spec",
        description="Read OpenSLO v1 documents whose indicators are leo-fleet metric sources (as `slo export` "
        "writes them) and write the equivalent slos.yaml, validated.",
    )
    read.add_argument("openslo", type=Path, help="OpenSLO YAML file (one or more documents)")
    read.add_argument("--out", type=Path, help="spec file to write (default stdout)")
    read.set_defaults(run=run_import)


def run_export(args: argparse.Namespace) -> int:
    import yaml

    from models.slo.spec import SpecError
    from pipelines.lib import slos as spec
    from pipelines.lib.slo_interop import to_openslo, to_sloth

    try:
        slos = spec.load() if args.slos is None else spec.load_slos(args.slos)
    except SpecError as exc:
        raise CliError(str(exc)) from None
    service = "leo-fleet"
    if args.format == "openslo":
        _write(yaml.safe_dump_all(to_openslo(slos, service), sort_keys=False, allow_unicode=True), args.out)
        return 0
    specs = to_sloth(slos, service)
    if args.out is None:
        print(yaml.safe_dump_all(specs.values(), sort_keys=False, allow_unicode=True), end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for period, document in specs.items():
        _write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), args.out / f"sloth-{period}.yaml")
    return 0


def run_import(args: argparse.Namespace) -> int:
    import yaml

    from models.slo.spec import SpecError, parse_slos
    from pipelines.lib.slo_interop import from_openslo

    try:
        documents = list(yaml.safe_load_all(args.openslo.read_text()))
        spec_document = from_openslo(documents, str(args.openslo))
        parse_slos(spec_document, str(args.openslo))  # what `--slos` will accept, checked now
    except yaml.YAMLError as exc:
        raise CliError(f"{args.openslo}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except (SpecError, ValueError) as exc:
        raise CliError(str(exc)) from None
    _write(yaml.safe_dump(spec_document, sort_keys=False, allow_unicode=True), args.out)
    return 0


def _write(text: str, path: Path | None) -> None:
    if path is None:
        print(text, end="")
    else:
        path.write_text(text)
