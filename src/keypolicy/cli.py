"""The ``keypolicy`` command line.

Errors meant for people go to stderr without a traceback and exit with status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from keypolicy import __version__
from keypolicy.ledger import ledger_location, read_ledger
from keypolicy.ledger_pg import PostgresURL
from keypolicy.mock.server import run_mock_server
from keypolicy.policy import PolicyError, load_policy
from keypolicy.policy.dump import dump_policy
from keypolicy.policy.errors import redact
from keypolicy.policy.model import Policy
from keypolicy.policy.summary import summarize
from keypolicy.policy.units import parse_duration
from keypolicy.records import RecordWriter
from keypolicy.report import records_summary, render_report
from keypolicy.sim.cluster import ClusterError
from keypolicy.sim.console import comparison_tables, progress_bar, summary_tables
from keypolicy.sim.ranges import Assumptions
from keypolicy.sim.run import simulate_variants
from keypolicy.sim.traffic import (
    FasterTraffic,
    Traffic,
    TrafficError,
    load_traffic,
    trace_arrivals,
)
from keypolicy.upstream import Accounting, parse_assumption
from keypolicy.usage import Group, usage_answer, usage_console_table, usage_table

app = typer.Typer(
    name="keypolicy",
    help="Decide how LLM API keys, quotas and budgets are used: check, simulate, compare, "
    "report, usage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Click's plain help layout: rich's option table cuts help off at 80 columns. main() adds
    # wrapping between words only, and whole command summaries (keypolicy._help).
    rich_markup_mode=None,
)

EXIT_INVALID = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def _err(text: str) -> None:
    print(text, file=sys.stderr)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from keypolicy._native import build_info  # noqa: PLC0415 - only --version needs it

        print(f"keypolicy {__version__} ({build_info()})")
        raise typer.Exit(0)


@app.command()
def check(
    policies: Annotated[list[Path], typer.Argument(help="Policy files to validate.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat lint warnings as errors.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
    resolved: Annotated[
        bool,
        typer.Option("--resolved", help="Print each policy as merged and normalized, as YAML."),
    ] = False,
) -> None:
    """Validate policies; print a summary of each, or every problem with its file:line:col."""
    failed = False
    for i, path in enumerate(policies):
        try:
            loaded = load_policy(path, strict=strict)
        except PolicyError as exc:
            failed = True
            _err(f"{path}: invalid")
            for issue in exc.issues:
                _err(f"  {issue.severity}: {issue}")
            continue
        if resolved:
            print(("---\n" if i else "") + dump_policy(loaded.policy), end="")
        elif not quiet:
            if i:
                print()
            print("\n".join(summarize(loaded)))
        for warning in loaded.warnings:
            _err(f"  warning: {warning}")
    if failed:
        _err("\nFix the problems above (each names its file:line:column) and run check again.")
        raise typer.Exit(EXIT_INVALID)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of the policy language, for editors (YAML language servers)."""
    document = Policy.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "keypolicy policy, version 1"
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        _err(f"cannot write {out}: {exc.strerror}")
        raise typer.Exit(EXIT_INVALID) from None


TrafficOpt = Annotated[
    Path | None, typer.Option("--traffic", help="A traffic profile (simulations/*.yaml).")
]
TraceOpt = Annotated[
    list[Path] | None,
    typer.Option("--trace", help="A trace file (CSV, JSONL, Parquet); repeatable."),
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the traffic and of every random draw.")]
RunsOpt = Annotated[
    int,
    typer.Option(
        min=1, help="Repeat with this many seeds; numbers become means with 95% intervals."
    ),
]
JobsOpt = Annotated[
    int,
    typer.Option(
        min=0,
        help="Runs simulated at once, in separate processes (0: one per core). The results are "
        "the same whatever it is.",
    ),
]
TimeUnitOpt = Annotated[
    str,
    typer.Option(
        "--time-unit",
        help="With --trace: what numeric timestamps count: auto (decided from the whole "
        "column; ambiguous is an error), seconds, milliseconds, or datetime.",
    ),
]
TimeZoneOpt = Annotated[
    str,
    typer.Option(
        "--time-zone",
        help="With --trace: the zone of date-times written without one (an IANA name such "
        "as Europe/Paris).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="With --trace: the model every row asks for, instead of a model column (default: "
        "each domain's own)."
    ),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        min=1,
        help="With --trace: the max_tokens of rows without that column (default: each row's "
        "completion tokens).",
    ),
]
SpeedupOpt = Annotated[
    float,
    typer.Option(
        "--speedup",
        min=0.001,
        help="With --trace: replay it this many times faster (10: an hour in six minutes), to "
        "stress a policy with real traffic.",
    ),
]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the summary JSON here.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Write the HTML report here (one self-contained file).")
]
FactorOpt = Annotated[
    float,
    typer.Option(
        "--provider-factor",
        min=0.01,
        help="The provider's "
        "real limits as a share of the declared ones (0.8: 20% "
        "less than the policy believes).",
    ),
]
AssumeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--assume",
        metavar="RULE=VALUES",
        help="Simulate the provider counting this way, the policy keeping its own assumption "
        "(as in production): refund_unused=true|false|both, count_failed=true|false|both, "
        "quantum_requests=none,1s, quantum_tokens=none,1s. Repeatable; every combination "
        "runs, and the outcome shows as a range.",
    ),
]


def _assumptions(specs: list[str] | None) -> Assumptions | None:
    """``--assume`` options as rules and their values; a bad one is an error, never ignored."""
    assume: dict[str, list[bool | float | None]] = {}
    for spec in specs or []:
        try:
            rule, values = parse_assumption(spec)
        except ValueError as exc:
            _err(f"--assume: {exc}")
            raise typer.Exit(EXIT_INVALID) from None
        assume[rule] = list(dict.fromkeys([*assume.get(rule, []), *values]))
    return assume or None


@dataclass(frozen=True)
class _TraceOptions:
    """How ``--trace`` files are read (each option is refused with a ``--traffic`` profile,
    which says these things itself)."""

    domain: str | None = None
    columns: list[str] | None = None
    skip_bad_rows: bool = False
    time_unit: str = "auto"
    time_zone: str = "UTC"
    model: str | None = None
    max_tokens: int | None = None
    speedup: float = 1.0

    def given(self) -> list[str]:
        """The options given on the command line, by their flag."""
        defaults = _TraceOptions()
        return [
            "--" + f.name.replace("_", "-").replace("columns", "column")
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        ]


def _load_traffic(traffic: Path | None, trace: list[Path] | None, opts: _TraceOptions) -> Traffic:
    if (traffic is None) == (not trace):
        _err("give either --traffic PROFILE or --trace FILE (one or more), not both")
        raise typer.Exit(EXIT_INVALID)
    if traffic is not None and opts.given():
        _err(
            f"{', '.join(opts.given())}: for --trace files; a --traffic profile says these "
            "itself (kind: trace profiles per file: columns, time_format, model, max_tokens)"
        )
        raise typer.Exit(EXIT_INVALID)
    mapping = _column_map(opts.columns or [])
    try:
        if traffic is not None:
            return load_traffic(traffic)
        source: Traffic = trace_arrivals(
            list(trace or []),
            domain=opts.domain,
            columns=mapping or None,
            skip_bad_rows=opts.skip_bad_rows,
            time_format=opts.time_unit,
            timezone=opts.time_zone,
            model=opts.model,
            max_tokens=opts.max_tokens,
        )
        return source if opts.speedup == 1 else FasterTraffic(source, opts.speedup)
    except TrafficError as exc:
        _err("traffic: invalid")
        for issue in exc.issues:
            _err(f"  error: {issue}")
        raise typer.Exit(EXIT_INVALID) from None


def _column_map(columns: list[str]) -> dict[str, str]:
    """``--column FIELD=COLUMN`` options as a map; anything else is an error, never ignored."""
    mapping: dict[str, str] = {}
    for item in columns:
        field, eq, column = (part.strip() for part in item.partition("="))
        if not eq or not field or not column:
            _err(
                f"--column {item!r}: write FIELD=COLUMN, such as "
                "--column completion_tokens=GeneratedTokens"
            )
            raise typer.Exit(EXIT_INVALID)
        if field in mapping:
            _err(f"--column {item!r}: {field} is mapped twice")
            raise typer.Exit(EXIT_INVALID)
        mapping[field] = column
    return mapping


def _load_policies(paths: list[Path]) -> list[Policy]:
    policies, failed = [], False
    for path in paths:
        try:
            policies.append(load_policy(path).policy)
        except PolicyError as exc:
            failed = True
            _err(f"{path}: invalid")
            for issue in exc.issues:
                _err(f"  {issue.severity}: {issue}")
    if failed:
        _err("\nFix the problems above (each names its file:line:column) and run again.")
        raise typer.Exit(EXIT_INVALID)
    return policies


def _check_outputs(**paths: Path | None) -> None:
    """Refuse, before any work, an output that could not be written: its folder missing or not
    writable, or the path a folder. Every output alike (nothing is created on the way)."""
    problems = []
    for option, path in paths.items():
        if path is None:
            continue
        flag = "--" + option.replace("_", "-")
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            problems.append(f"{flag} {path}: is a folder; give a file name")
        elif option != "records" and path.exists() and not path.is_file():
            # written whole to a temporary file, then renamed over: a device would be replaced
            problems.append(f"{flag} {path}: not a regular file (a device or a pipe); give a file")
        elif not folder.is_dir():
            problems.append(f"{flag} {path}: the folder {folder} does not exist (create it first)")
        elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            problems.append(f"{flag} {path}: not writable")
    for problem in problems:
        _err(problem)
    if problems:
        raise typer.Exit(EXIT_INVALID)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path = path.resolve()  # through a symlink to its target, which is what gets replaced
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        _err(f"cannot write {path}: {exc.strerror}")
        raise typer.Exit(EXIT_INVALID) from None


def _check_fits(policies: list[Policy], traffic: Traffic) -> None:
    """Refuse, before any work, traffic the policies cannot take: a domain a policy lacks, a
    model a domain may not call (every such request would be rejected), two variants of one
    name."""
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        _err(f"two policies share a name ({', '.join(names)}): give each variant its own name")
        raise typer.Exit(EXIT_INVALID)
    asked = traffic.models()
    for policy in policies:
        missing = sorted(traffic.domains() - set(policy.domains))
        if missing:
            _err(
                f"the traffic has domains the policy {policy.name!r} does not: "
                f"{', '.join(missing)} (its domains: {', '.join(sorted(policy.domains))}); "
                "add them to the policy, or map the traffic onto its domains"
            )
            raise typer.Exit(EXIT_INVALID)
        refused = [
            f"the traffic's {domain} requests name {model!r}, which the policy {policy.name!r} "
            f"does not let {domain} call (it may call {', '.join(allowed)}): add it to the "
            "domain's models, or replay the trace with --model"
            for domain, models in sorted(asked.items())
            for model in sorted(models)
            if model not in (allowed := policy.domains[domain].allowed_models())
        ]
        for problem in refused:
            _err(problem)
        if refused:
            raise typer.Exit(EXIT_INVALID)


def _run_all(
    policies: list[Policy],
    traffic: Traffic,
    seed: int,
    runs: int,
    records: Path | None = None,
    factor: float = 1.0,
    jobs: int = 0,
    assume: Assumptions | None = None,
    cluster: str | None = None,
) -> dict[str, dict[str, Any]]:
    console = Console(stderr=True)
    names = [p.name for p in policies]
    _check_fits(policies, traffic)
    writer = None  # opened once everything is validated: a refusal leaves no file behind
    if records is not None:
        try:
            writer = RecordWriter(records)
        except (OSError, ValueError) as exc:
            _err(f"--records: {exc}")
            raise typer.Exit(EXIT_INVALID) from None
    seeds = list(range(seed, seed + runs))
    if jobs < 1:  # automatic: one process per run, up to the machine's cores
        jobs = min(os.cpu_count() or 1, len(policies) * len(seeds))
    try:
        with progress_bar(console, names, traffic.duration_s) as update:
            results = simulate_variants(
                policies,
                traffic,
                seeds,
                jobs=jobs,
                on_record=writer.write if writer is not None else None,
                on_progress=update,
                provider_factor=factor,
                assume=assume,
                cluster=cluster,
            )
            for index, result in enumerate(results.values()):
                if not result["partial"]:
                    update(index, result["runs"] - 1, traffic.duration_s)
    except ClusterError as exc:  # checked before any run: nothing was written
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                Path(str(records)).unlink()  # opened empty: nothing half-written is left
        _err(f"--cluster: {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:  # the records could not be written (a full disk, say)
        if writer is None:
            raise
        with contextlib.suppress(OSError):
            writer.close()
        _err(f"--records {records}: cannot write the records: {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    if writer is not None:
        writer.close()
    missing = [name for name in names if name not in results]
    if missing:
        _err(f"interrupted before {', '.join(missing)} could run: not in the results")
    return results


def _render(
    results: dict[str, dict[str, Any]],
    out: Path,
    policies: dict[str, Policy] | None,
    prefer: str | None = None,
) -> None:
    try:
        render_report(results, out, policies=policies, prefer=prefer)
    except (OSError, ValueError) as exc:
        _err(f"cannot write the report {out}: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    _err(f"report written to {out}")


def _show(results: dict[str, dict[str, Any]]) -> None:
    console = Console(width=max(Console().width, 150))
    if len(results) == 1:
        for table in summary_tables(next(iter(results.values()))):
            console.print(table)
    else:
        for table in comparison_tables(results):
            console.print(table)
    for name, result in results.items():
        sentences = (result.get("range") or {}).get("sentences") or []
        if sentences:
            console.print(f"{name}, depending on how the provider counts:")
            for sentence in sentences:
                console.print(f"  {sentence}")
            continue
        provider = result["about"].get("provider") or {}
        assumed, simulated = provider.get("assumed") or {}, provider.get("simulated") or {}
        rules = Accounting(**simulated) if simulated else None
        differs = [rules.describe(k) for k in simulated if rules and simulated[k] != assumed.get(k)]
        if differs:
            console.print(
                f"{name}: the simulated provider counted with {', '.join(differs)} "
                "(the policy assumes otherwise)"
            )
    warnings = {w: None for r in results.values() for w in r["about"].get("warnings", [])}
    for warning in warnings:
        _err(f"warning: {warning}")
    if any(r["partial"] for r in results.values()):
        _err("interrupted: the results above are partial (what was simulated before Ctrl-C)")


DomainOpt = Annotated[str | None, typer.Option(help="With --trace: the domain of every row.")]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option(help="With --trace: FIELD=COLUMN, e.g. prompt_tokens=ContextTokens."),
]
SkipOpt = Annotated[
    bool, typer.Option(help="With --trace: skip and count unreadable rows instead of stopping.")
]


@app.command()
def simulate(
    policy: Annotated[Path, typer.Argument(help="The policy to simulate.")],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: DomainOpt = None,
    column: ColumnOpt = None,
    skip_bad_rows: SkipOpt = False,
    time_unit: TimeUnitOpt = "auto",
    time_zone: TimeZoneOpt = "UTC",
    model: ModelOpt = None,
    max_tokens: MaxTokensOpt = None,
    speedup: SpeedupOpt = 1.0,
    seed: SeedOpt = 0,
    runs: RunsOpt = 1,
    json_out: JsonOpt = None,
    records: Annotated[
        Path | None,
        typer.Option(help="Stream one record per request here (.csv, or .parquet with pyarrow)."),
    ] = None,
    provider_factor: FactorOpt = 1.0,
    assume: AssumeOpt = None,
    out: OutOpt = None,
    jobs: JobsOpt = 0,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run on this Dask scheduler (keypolicy[cluster])."),
    ] = None,
) -> None:
    """Replay traffic through a policy and predict 429s, waits, deferrals and cost."""
    _check_outputs(json=json_out, records=records, out=out)
    assumptions = _assumptions(assume)
    (loaded,) = _load_policies([policy])
    opts = _TraceOptions(
        domain, column, skip_bad_rows, time_unit, time_zone, model, max_tokens, speedup
    )
    source = _load_traffic(traffic, trace, opts)
    results = _run_all(
        [loaded], source, seed, runs, records, provider_factor, jobs, assumptions, cluster
    )
    summary = results[loaded.name]
    if json_out is not None:
        _write_json(json_out, summary)
    _show(results)
    if out is not None:
        _render(results, out, {loaded.name: loaded})
    _exit_if_partial(results)


@app.command()
def compare(
    policies: Annotated[list[Path], typer.Argument(help="Policy variants to compare.")],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: DomainOpt = None,
    column: ColumnOpt = None,
    skip_bad_rows: SkipOpt = False,
    time_unit: TimeUnitOpt = "auto",
    time_zone: TimeZoneOpt = "UTC",
    model: ModelOpt = None,
    max_tokens: MaxTokensOpt = None,
    speedup: SpeedupOpt = 1.0,
    seed: SeedOpt = 0,
    runs: RunsOpt = 3,
    json_out: JsonOpt = None,
    provider_factor: FactorOpt = 1.0,
    assume: AssumeOpt = None,
    out: OutOpt = None,
    jobs: JobsOpt = 0,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run on this Dask scheduler (keypolicy[cluster])."),
    ] = None,
    prefer: Annotated[
        str | None,
        typer.Option(
            metavar="POLICY",
            help="The option that wins a tie in the report's decision (default: the one that "
            "puts fewer priority classes in one project, then the order given).",
        ),
    ] = None,
    with_headroom: Annotated[
        bool,
        typer.Option(
            "--headroom",
            help="Also find each option's headroom (traffic growth and limit cuts before the "
            "first critical refusal) and a sensitivity table (+25%, +50% traffic, -20% limits)"
            ": many more simulations.",
        ),
    ] = False,
) -> None:
    """Simulate policy variants on the same arrivals and show them side by side."""
    _check_outputs(json=json_out, out=out)
    assumptions = _assumptions(assume)
    loaded = _load_policies(policies)
    names = [p.name for p in loaded]
    if prefer is not None and prefer not in names:
        _err(f"--prefer {prefer!r}: not one of the policies compared ({', '.join(names)})")
        raise typer.Exit(EXIT_INVALID)
    opts = _TraceOptions(
        domain, column, skip_bad_rows, time_unit, time_zone, model, max_tokens, speedup
    )
    source = _load_traffic(traffic, trace, opts)
    results = _run_all(
        loaded,
        source,
        seed,
        runs,
        factor=provider_factor,
        jobs=jobs,
        assume=assumptions,
        cluster=cluster,
    )
    if with_headroom and not any(r["partial"] for r in results.values()):
        _add_headroom(loaded, source, seed, runs, results, provider_factor, jobs, assumptions)
    if json_out is not None:
        _write_json(json_out, {"variants": results})
    _show(results)
    if out is not None:
        _render(results, out, {p.name: p for p in loaded}, prefer)
    _exit_if_partial(results)


# What --headroom simulates besides: (label, traffic factor, limits factor).
SENSITIVITY = (("Traffic +25%", 1.25, 1.0), ("Traffic +50%", 1.5, 1.0), ("Limits -20%", 1.0, 0.8))


def _add_headroom(
    loaded: list[Policy],
    source: Traffic,
    seed: int,
    runs: int,
    results: dict[str, dict[str, Any]],
    factor: float,
    jobs: int,
    assume: Assumptions | None,
) -> None:
    """Put each option's headroom and its sensitivity scenarios in ``results`` (the report's
    headroom row and sensitivity table; ``keypolicy.report.sensitivity``)."""
    from keypolicy.sim.headroom import GrownTraffic, headroom  # noqa: PLC0415

    seeds = list(range(seed, seed + runs))
    for label, grow, cut in SENSITIVITY:
        _err(f"sensitivity: {label}")
        traffic = GrownTraffic(source, grow) if grow != 1.0 else source
        more = _run_all(loaded, traffic, seed, runs, factor=factor * cut, jobs=jobs, assume=assume)
        for name, result in more.items():
            results[name].setdefault("sensitivity", []).append(
                {
                    "label": label,
                    "traffic": grow,
                    "limits": cut,
                    "domains": result["domains"],
                    "totals": result["totals"],
                }
            )
    for policy in loaded:
        _err(f"headroom: {policy.name} (a search over traffic and limit factors)")
        found = headroom(
            policy, source, seeds, precision=0.1, max_steps=6, jobs=max(jobs, os.cpu_count() or 1)
        )
        results[policy.name]["headroom"] = dataclasses.asdict(found)


def _exit_if_partial(results: dict[str, dict[str, Any]]) -> None:
    """Exit 130 (as a shell does after Ctrl-C) when the results are partial: what was done is
    kept and marked partial, and whatever runs this learns it did not finish."""
    if any(r["partial"] for r in results.values()):
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def report(
    records: Annotated[
        str,
        typer.Argument(
            help="Usage records: a simulation's --records CSV, or the runtime's ledger "
            "(.sqlite, .jsonl, .csv, or a postgresql:// URL)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="The policy the records ran under (limits, budgets, classes)."
        ),
    ] = None,
) -> None:
    """Render the HTML report from usage records, whoever wrote them."""
    _check_outputs(out=out)
    loaded = _load_policies([policy])[0] if policy is not None else None
    try:
        where = ledger_location(records)  # a PostgreSQL URL prints with its password masked
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_INVALID) from None
    try:
        summary = records_summary(where, loaded)
    except (OSError, ValueError) as exc:
        message = redact(str(exc))  # the readers' messages begin with the file, most of them
        _err(message if message.startswith(str(where)) else f"{where}: {message}")
        raise typer.Exit(EXIT_INVALID) from None
    _render({summary["policy"]: summary}, out, {loaded.name: loaded} if loaded else None)


Format = Literal["table", "csv", "json"]


@app.command()
def usage(
    ledger: Annotated[
        str,
        typer.Argument(
            help="The runtime's ledger (.sqlite, .jsonl, .csv, a postgresql:// URL; by default "
            "$KEYPOLICY_LEDGER or ./keypolicy-usage.sqlite) or a simulation's --records CSV."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only requests that finished in the last DURATION (24h, 90m, 7d), counted "
            "back from now (the wall clock), not from the ledger's newest record."
        ),
    ] = None,
    by: Annotated[Group, typer.Option(help="One row per domain, key, model, project or pool.")] = (
        "domain"
    ),
    output: Annotated[
        Format, typer.Option("--format", help="table (for people), csv or json.")
    ] = "table",
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="The policy the ledger ran under (needed for --by pool)."),
    ] = None,
) -> None:
    """Who used what: requests, outcomes, tokens, cost and waits per domain, key, model,
    project or pool, most used first, with a total."""
    since_s = _seconds(since, "--since") if since is not None else None
    loaded = _load_policies([policy])[0] if policy is not None else None
    try:
        where = ledger_location(ledger)  # a PostgreSQL URL prints with its password masked
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_INVALID) from None
    # --since is asked of the ledger (its index on `finished`), then applied again by the table
    # at the same instant: what the ledger returns is what the table keeps.
    now = time.time()
    try:
        frame = read_ledger(where, since=now - since_s if since_s is not None else None)
        table = usage_table(frame, by=by, since_s=since_s, policy=loaded, now=now)
    except (OSError, ValueError) as exc:
        _err(redact(str(exc)))
        raise typer.Exit(EXIT_INVALID) from None
    if table.empty:
        nothing = _nothing(where, frame if since_s is None else _read_all(where), since)
        if output == "table":
            print(nothing)
            return
        _err(nothing)  # csv/json still write their (empty) table below
    if output == "csv":
        sys.stdout.write(table.to_csv(index=False))
    elif output == "json":
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        rendered = usage_console_table(table, by)
        wide = Console(width=1000).measure(rendered).maximum  # whole, not squeezed to 80 columns
        Console(width=max(Console().width, wide)).print(rendered)
        print(usage_answer(table, by))


def _read_all(where: Path | PostgresURL) -> Any:
    """The whole ledger (to say how much older usage there is when --since finds none)."""
    try:
        return read_ledger(where)
    except (OSError, ValueError) as exc:
        _err(redact(str(exc)))
        raise typer.Exit(EXIT_INVALID) from None


def _nothing(ledger: Path | PostgresURL, frame: Any, since: str | None) -> str:
    if frame.empty:
        return f"no usage records in {ledger}"
    newest = datetime.fromtimestamp(frame["finished"].max(), UTC).isoformat(timespec="seconds")
    return (
        f"no usage records finished in the last {since} in {ledger} "
        f"({len(frame):,} older; the newest finished at {newest})"
    )


def _seconds(value: str, option: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        _err(f"{option}: {exc}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command("mock-server")
def mock_server(
    policy: Annotated[
        Path,
        typer.Option(
            "--policy", help="Policy whose projects, limits and key variables the mock serves."
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (the URL is logged).")] = 8000,
    speed: Annotated[
        float, typer.Option(help="Run the model's clock this many times faster, limits included.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    limit_factor: Annotated[
        float,
        typer.Option(
            help="Scale every declared limit (0.5: the "
            "provider allows half of what the policy says)."
        ),
    ] = 1.0,
    limit: Annotated[
        list[str] | None,
        typer.Option(
            help="Override one: PROJECT/MODEL:rpm=500,"
            "tpm=200k (PROJECT * = organization); "
            "repeatable."
        ),
    ] = None,
    latency: Annotated[bool, typer.Option("--latency/--no-latency")] = True,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 5xx.")] = 0.0,
    timeout_rate: Annotated[
        float, typer.Option(help="Share that hang until the client times out.")
    ] = 0.0,
    disconnect_rate: Annotated[float, typer.Option(help="Share whose connection drops.")] = 0.0,
    bare_429_rate: Annotated[float, typer.Option(help="Share of 429s sent without headers.")] = 0.0,
    malformed_rate: Annotated[float, typer.Option(help="Share with a malformed body.")] = 0.0,
    quota_rate: Annotated[float, typer.Option(help="Share answered insufficient_quota.")] = 0.0,
    retry_after: Annotated[
        bool, typer.Option("--retry-after/--no-retry-after", help="Send retry-after on 429s.")
    ] = False,
    prompt_caching: Annotated[bool, typer.Option("--prompt-caching/--no-prompt-caching")] = False,
    assume: Annotated[
        list[str] | None,
        typer.Option(
            help="Count by another accounting rule than the policy's: RULE=VALUE "
            "(refund_unused=true, count_failed=false, quantum_tokens=1s); repeatable."
        ),
    ] = None,
    batch_median: Annotated[
        str | None,
        typer.Option(help="Median time a batch takes (model time; drawn log-normal; 1h)."),
    ] = None,
    batch_p95: Annotated[
        str | None,
        typer.Option(help="95th percentile of a batch's time (8h; 8x a --batch-median given)."),
    ] = None,
    batch_delay: Annotated[
        str | None,
        typer.Option(help="Every batch takes exactly this long, instead of the drawn time."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
) -> None:
    """Serve a mock OpenAI API on loopback that rate-limits like the real one (Ctrl-C stops)."""
    try:
        run_mock_server(
            str(policy),
            host,
            port,
            speed,
            seed,
            log_level=log_level,
            limit_factor=limit_factor,
            limits=limit or [],
            latency=latency,
            error_rate=error_rate,
            timeout_rate=timeout_rate,
            disconnect_rate=disconnect_rate,
            bare_429_rate=bare_429_rate,
            malformed_rate=malformed_rate,
            quota_rate=quota_rate,
            retry_after=retry_after,
            prompt_caching=prompt_caching,
            assume=tuple(assume or ()),
            batch_median=_seconds(batch_median, "--batch-median") if batch_median else None,
            batch_p95=_seconds(batch_p95, "--batch-p95") if batch_p95 else None,
            batch_delay=_seconds(batch_delay, "--batch-delay") if batch_delay else None,
        )
    except PolicyError as exc:
        _err(f"{policy}: invalid")
        for issue in exc.issues:
            _err(f"  {issue.severity}: {issue}")
        raise typer.Exit(EXIT_INVALID) from None
    except (ValueError, OSError) as exc:
        _err(f"mock-server: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def replay(
    policy: Annotated[Path, typer.Argument(help="The policy the runtime enforces.")],
    against: Annotated[
        str, typer.Option(help="The provider's URL: a `keypolicy mock-server` at the same --speed.")
    ],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: DomainOpt = None,
    column: ColumnOpt = None,
    time_unit: TimeUnitOpt = "auto",
    time_zone: TimeZoneOpt = "UTC",
    model: ModelOpt = None,
    max_tokens: MaxTokensOpt = None,
    speed: Annotated[
        float, typer.Option(min=0.001, help="Model seconds per wall second (the mock's --speed).")
    ] = 1.0,
    ledger: Annotated[
        Path, typer.Option(help="The runtime's usage ledger (.jsonl, .csv, .sqlite); must be new.")
    ] = Path("replay-ledger.jsonl"),
    seed: SeedOpt = 0,
    window: Annotated[
        str | None,
        typer.Option(help="Replay only START-END of the traffic, from its start (6h45m-7h30m)."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Replay only this domain's arrivals; repeatable.")
    ] = None,
    predict: Annotated[
        Path | None,
        typer.Option(help="Also simulate the same arrivals and write the simulator's records."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="Callers on threads (sync client).")] = 16,
    chars_per_token: Annotated[
        float, typer.Option(min=1.0, help="Prompt text's characters per exact token.")
    ] = 4.0,
    env_file: Annotated[Path | None, typer.Option(help="A .env file with the keys.")] = None,
) -> None:
    """Send traffic at its times through the live runtime (real openai clients), writing its
    ledger: what the simulator predicts, done for real. Compare with `keypolicy fidelity`."""
    from keypolicy.fidelity.commands import parse_window, replay_command, windowed  # noqa: PLC0415
    from keypolicy.fidelity.replay import ReplaySettings  # noqa: PLC0415

    _check_outputs(ledger=ledger, predict=predict)
    for path in (ledger, predict):
        if path is not None and path.exists():
            _err(f"{path}: exists; a replay writes a new file (remove it or name another)")
            raise typer.Exit(EXIT_INVALID)
    try:
        cut = parse_window(window) if window is not None else None
    except ValueError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_INVALID) from None
    (loaded,) = _load_policies([policy])
    opts = _TraceOptions(domain, column, False, time_unit, time_zone, model, max_tokens)
    source = _load_traffic(traffic, trace, opts)
    unknown = sorted(set(only or ()) - source.domains())
    if unknown:
        known = ", ".join(sorted(source.domains()))
        _err(f"--only {', '.join(unknown)}: not a domain of the traffic (it has: {known})")
        raise typer.Exit(EXIT_INVALID)
    source = windowed(source, cut, set(only or ()))
    _check_fits([loaded], source)
    settings = ReplaySettings(
        speed=speed, seed=seed, threads=threads, default_chars_per_token=chars_per_token
    )
    code = replay_command(
        loaded, source, against, ledger, settings, env_file=env_file, predicted=predict
    )
    raise typer.Exit(code)


@app.command()
def fidelity(
    predicted: Annotated[Path, typer.Argument(help="The simulator's records or summary JSON.")],
    observed: Annotated[Path, typer.Argument(help="The runtime's ledger (or records).")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the table as JSON.")
    ] = None,
) -> None:
    """Compare what the simulator predicted with what the runtime did, per domain and in total:
    outcomes, upstream 429s, deferrals, wait p50/p95, cost, each with its relative error."""
    from keypolicy.fidelity.commands import fidelity_command  # noqa: PLC0415

    _check_outputs(json=json_out)
    raise typer.Exit(fidelity_command(predicted, observed, json_out))


@app.command()
def advise(
    policy: Annotated[Path, typer.Argument(help="The base policy whose domains are regrouped.")],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: DomainOpt = None,
    column: ColumnOpt = None,
    seed: SeedOpt = 0,
    runs: Annotated[
        int, typer.Option(min=1, help="Seeds per candidate (same arrivals for every one).")
    ] = 3,
    apart: Annotated[
        list[str] | None,
        typer.Option(metavar="A,B", help="Domains never in one pool; repeatable."),
    ] = None,
    together: Annotated[
        list[str] | None,
        typer.Option(metavar="A,B", help="Domains always in one pool; repeatable."),
    ] = None,
    max_pools: Annotated[int | None, typer.Option(min=1, help="At most this many pools.")] = None,
    rule: Annotated[
        str,
        typer.Option(
            help="A pool's project limits: sum (the replaced projects' added up, capped by the "
            "organization's) or organization (the organization's)."
        ),
    ] = "sum",
    rank: Annotated[
        str | None,
        typer.Option(
            metavar="SCORES",
            help="What matters, most first, comma-separated (default: critical, wait, cost, "
            "blast, projects, refused, late, throttled, keys; scores left out follow in that "
            "order).",
        ),
    ] = None,
    objectives: Annotated[
        str | None,
        typer.Option(metavar="SCORES", help="The scores the front is made of (default: all)."),
    ] = None,
    critical: Annotated[
        str | None,
        typer.Option(
            metavar="CLASSES",
            help="Priority classes whose refusals count as critical (default: the most urgent "
            "and every class with a reserve).",
        ),
    ] = None,
    screen: Annotated[
        bool,
        typer.Option(
            "--screen/--no-screen",
            help="Screen candidates by simulating their parts that share no limit apart (the "
            "front is still simulated in full).",
        ),
    ] = True,
    headroom: Annotated[
        bool, typer.Option("--headroom/--no-headroom", help="Search the front's headroom.")
    ] = True,
    max_candidates: Annotated[
        int, typer.Option(min=1, help="Refuse a search of more groupings than this.")
    ] = 1000,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the advice as JSON.")
    ] = None,
    out: OutOpt = None,
    write_policy: Annotated[
        Path | None,
        typer.Option(help="Write the recommended grouping as a policy extending POLICY."),
    ] = None,
    jobs: JobsOpt = 0,
    cluster: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Run the simulations on this Dask scheduler (tcp://HOST:8786; needs "
            "keypolicy[cluster]); the results are the same as here.",
        ),
    ] = None,
) -> None:
    """Every grouping of the policy's domains into pools, simulated: the ones nobody beats,
    ranked, with their headroom; writes the best as a policy."""
    from keypolicy.advise import BaseError, ConstraintError, SearchTooLargeError  # noqa: PLC0415
    from keypolicy.advise import command as advising  # noqa: PLC0415 - only advise needs it

    _check_outputs(json=json_out, out=out, write_policy=write_policy)
    if rule not in ("sum", "organization"):
        _err(f"--rule {rule!r}: sum or organization")
        raise typer.Exit(EXIT_INVALID)
    (loaded,) = _load_policies([policy])
    source = _load_traffic(traffic, trace, _TraceOptions(domain, column))
    _check_fits([loaded], source)
    try:
        settings = advising.settings(
            apart=apart,
            together=together,
            max_pools=max_pools,
            rule="sum" if rule == "sum" else "organization",
            rank=rank,
            objectives=objectives,
            critical=critical,
            screen=screen,
            headroom=headroom,
            max_candidates=max_candidates,
        )
        request = advising.Request(
            loaded,
            policy,
            source,
            list(range(seed, seed + runs)),
            settings,
            jobs if jobs >= 1 else os.cpu_count() or 1,
            cluster,
            json_out,
            out,
            write_policy,
        )
        advice, written = advising.run(request, Console(stderr=True))
    except (BaseError, ConstraintError, SearchTooLargeError, ClusterError, ValueError) as exc:
        _err(f"advise: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except KeyboardInterrupt:
        _err("interrupted: nothing written (the search's results need every run)")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print("\n".join(advising.report_lines(advice)))
    for path in written:
        _err(f"written: {path}")


@app.command()
def worker(
    policy: Annotated[Path, typer.Argument(help="The policy whose deferred jobs to run.")],
    ledger: Annotated[
        str | None,
        typer.Option(
            help="The ledger whose job queue to run (.sqlite, a postgresql:// URL); by default "
            "$KEYPOLICY_LEDGER or ./keypolicy-usage.sqlite: the one the services write."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="The provider's URL (else the policy's, else $OPENAI_BASE_URL)."),
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option(help="A .env file to read the keys' variables from.")
    ] = None,
    gather: Annotated[
        str, typer.Option(help="How long a batch file waits for more jobs (60s, 5m).")
    ] = "60s",
    poll: Annotated[
        str, typer.Option(help="First pause before a batch is polled; doubles up to 10m.")
    ] = "30s",
) -> None:
    """Run the policy's deferred jobs (rt.defer) for services that should not: live jobs in
    their windows, batch jobs through the Batch API. Ctrl-C or SIGTERM stops it cleanly: jobs
    not sent wait for the next worker, calls in flight get 10 s to end."""
    from keypolicy.jobs import JobSettings  # noqa: PLC0415 - the runtime loads only here
    from keypolicy.jobs.commands import err, run_worker  # noqa: PLC0415

    settings = JobSettings(
        gather_s=_seconds(gather, "--gather"),
        poll_s=_seconds(poll, "--poll"),
        poll_max_s=max(600.0, _seconds(poll, "--poll")),
    )
    try:
        code = run_worker(
            policy, ledger=ledger, base_url=base_url, env_file=env_file, settings=settings, say=err
        )
    except PolicyError as exc:
        _err(f"{policy}: invalid")
        for issue in exc.issues:
            _err(f"  {issue.severity}: {issue}")
        raise typer.Exit(EXIT_INVALID) from None
    except (ValueError, OSError) as exc:
        _err(f"worker: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    raise typer.Exit(code)


@app.command()
def jobs(
    ledger: Annotated[
        str,
        typer.Argument(help="The ledger whose job queue to show (.sqlite, a postgresql:// URL)."),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only jobs of this status (waiting, running, done, failed, expired)."),
    ] = None,
    domain: Annotated[str | None, typer.Option(help="Only jobs of this domain.")] = None,
    output: Annotated[
        Literal["table", "csv", "json"],
        typer.Option("--format", help="table (for people), csv or json."),
    ] = "table",
) -> None:
    """Deferred jobs: what is waiting, running, done, failed or expired, with ages (since
    deferred), how long they ran, attempts, costs and why."""
    from keypolicy.jobs.commands import jobs_rows, jobs_table  # noqa: PLC0415

    try:
        rows = jobs_rows(ledger, status, domain, time.time())
    except ValueError as exc:
        _err(f"jobs: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(jobs_table(rows, output))


def main() -> None:
    """Entry point of the ``keypolicy`` command."""
    from keypolicy._help import readable_help  # noqa: PLC0415 - only the command needs it

    try:
        readable_help(app)()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
