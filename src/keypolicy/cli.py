"""The ``keypolicy`` command line.

Errors meant for people go to stderr without a traceback and exit with status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from keypolicy import __version__
from keypolicy.ledger import read_ledger
from keypolicy.mock.server import run_mock_server
from keypolicy.policy import PolicyError, load_policy
from keypolicy.policy.dump import dump_policy
from keypolicy.policy.errors import redact
from keypolicy.policy.model import Policy
from keypolicy.policy.summary import summarize
from keypolicy.policy.units import parse_duration
from keypolicy.records import RecordWriter
from keypolicy.report import records_summary, render_report
from keypolicy.sim.console import comparison_tables, progress_bar, summary_tables
from keypolicy.sim.run import simulate_variants
from keypolicy.sim.traffic import Traffic, TrafficError, load_traffic, trace_arrivals
from keypolicy.usage import Group, usage_answer, usage_console_table, usage_table

app = typer.Typer(
    name="keypolicy",
    help="Decide how LLM API keys, quotas and budgets are used: check, simulate, compare, "
    "report, usage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_INVALID = 2


def _err(text: str) -> None:
    print(text, file=sys.stderr)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(f"keypolicy {__version__}")
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


def _load_traffic(
    traffic: Path | None,
    trace: list[Path] | None,
    domain: str | None,
    columns: list[str] | None,
    skip_bad_rows: bool,
    time_unit: str = "auto",
) -> Traffic:
    if (traffic is None) == (not trace):
        _err("give either --traffic PROFILE or --trace FILE (one or more), not both")
        raise typer.Exit(EXIT_INVALID)
    if columns and traffic is not None:
        _err("--column maps the columns of a --trace file; a --traffic profile maps its own")
        raise typer.Exit(EXIT_INVALID)
    if time_unit != "auto" and traffic is not None:
        _err("--time-unit is for a --trace file; a --traffic profile says its own time_format")
        raise typer.Exit(EXIT_INVALID)
    mapping = _column_map(columns or [])
    try:
        if traffic is not None:
            return load_traffic(traffic)
        return trace_arrivals(
            list(trace or []),
            domain=domain,
            columns=mapping or None,
            skip_bad_rows=skip_bad_rows,
            time_format=time_unit,
        )
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
        elif not folder.is_dir():
            problems.append(f"{flag} {path}: the folder {folder} does not exist (create it first)")
        elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            problems.append(f"{flag} {path}: not writable")
    for problem in problems:
        _err(problem)
    if problems:
        raise typer.Exit(EXIT_INVALID)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        _err(f"cannot write {path}: {exc.strerror}")
        raise typer.Exit(EXIT_INVALID) from None


def _run_all(
    policies: list[Policy],
    traffic: Traffic,
    seed: int,
    runs: int,
    records: Path | None = None,
    factor: float = 1.0,
    jobs: int = 0,
) -> dict[str, dict[str, Any]]:
    console = Console(stderr=True)
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        _err(f"two policies share a name ({', '.join(names)}): give each variant its own name")
        raise typer.Exit(EXIT_INVALID)
    for policy in policies:
        missing = sorted(traffic.domains() - set(policy.domains))
        if missing:
            _err(
                f"the traffic has domains the policy {policy.name!r} does not: "
                f"{', '.join(missing)} (its domains: {', '.join(sorted(policy.domains))}); "
                "add them to the policy, or map the traffic onto its domains"
            )
            raise typer.Exit(EXIT_INVALID)
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
            )
            for index, result in enumerate(results.values()):
                if not result["partial"]:
                    update(index, result["runs"] - 1, traffic.duration_s)
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
    results: dict[str, dict[str, Any]], out: Path, policies: dict[str, Policy] | None
) -> None:
    try:
        render_report(results, out, policies=policies)
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
    if any(r["partial"] for r in results.values()):
        _err("interrupted: the results above are partial (what was simulated before Ctrl-C)")


@app.command()
def simulate(
    policy: Annotated[Path, typer.Argument(help="The policy to simulate.")],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: Annotated[
        str | None, typer.Option(help="With --trace: the domain of every row.")
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(help="With --trace: FIELD=COLUMN, e.g. prompt_tokens=ContextTokens."),
    ] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option(help="Skip and count unreadable trace rows instead of stopping.")
    ] = False,
    time_unit: TimeUnitOpt = "auto",
    seed: SeedOpt = 0,
    runs: RunsOpt = 1,
    json_out: JsonOpt = None,
    records: Annotated[
        Path | None,
        typer.Option(help="Stream one record per request here (.csv, or .parquet with pyarrow)."),
    ] = None,
    provider_factor: FactorOpt = 1.0,
    out: OutOpt = None,
    jobs: JobsOpt = 0,
) -> None:
    """Replay traffic through a policy and predict 429s, waits, deferrals and cost."""
    _check_outputs(json=json_out, records=records, out=out)
    (loaded,) = _load_policies([policy])
    source = _load_traffic(traffic, trace, domain, column, skip_bad_rows, time_unit)
    results = _run_all([loaded], source, seed, runs, records, provider_factor, jobs)
    summary = results[loaded.name]
    if json_out is not None:
        _write_json(json_out, summary)
    _show(results)
    if out is not None:
        _render(results, out, {loaded.name: loaded})


@app.command()
def compare(
    policies: Annotated[list[Path], typer.Argument(help="Policy variants to compare.")],
    traffic: TrafficOpt = None,
    trace: TraceOpt = None,
    domain: Annotated[
        str | None, typer.Option(help="With --trace: the domain of every row.")
    ] = None,
    column: Annotated[list[str] | None, typer.Option(help="With --trace: FIELD=COLUMN.")] = None,
    skip_bad_rows: Annotated[bool, typer.Option(help="Skip unreadable trace rows.")] = False,
    time_unit: TimeUnitOpt = "auto",
    seed: SeedOpt = 0,
    runs: RunsOpt = 1,
    json_out: JsonOpt = None,
    provider_factor: FactorOpt = 1.0,
    out: OutOpt = None,
    jobs: JobsOpt = 0,
) -> None:
    """Simulate policy variants on the same arrivals and show them side by side."""
    _check_outputs(json=json_out, out=out)
    loaded = _load_policies(policies)
    source = _load_traffic(traffic, trace, domain, column, skip_bad_rows, time_unit)
    results = _run_all(loaded, source, seed, runs, factor=provider_factor, jobs=jobs)
    if json_out is not None:
        _write_json(json_out, {"variants": results})
    _show(results)
    if out is not None:
        _render(results, out, {p.name: p for p in loaded})


@app.command()
def report(
    records: Annotated[
        Path,
        typer.Argument(
            help="Usage records: a simulation's --records CSV, or the runtime's ledger "
            "(.sqlite, .jsonl, .csv)."
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
    loaded = _load_policies([policy])[0] if policy is not None else None
    try:
        summary = records_summary(records, loaded)
    except (OSError, ValueError) as exc:
        _err(f"{records}: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    _render({summary["policy"]: summary}, out, {loaded.name: loaded} if loaded else None)


Format = Literal["table", "csv", "json"]


@app.command()
def usage(
    ledger: Annotated[
        Path,
        typer.Argument(
            help="The runtime's ledger (.sqlite, .jsonl, .csv; by default "
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
        frame = read_ledger(ledger)
        table = usage_table(frame, by=by, since_s=since_s, policy=loaded)
    except (OSError, ValueError) as exc:
        _err(redact(str(exc)))
        raise typer.Exit(EXIT_INVALID) from None
    if table.empty and output == "table":
        print(_nothing(ledger, frame, since))
        return
    if table.empty:
        _err(_nothing(ledger, frame, since))
    if output == "csv":
        sys.stdout.write(table.to_csv(index=False))
    elif output == "json":
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        rendered = usage_console_table(table, by)
        wide = Console(width=1000).measure(rendered).maximum  # whole, not squeezed to 80 columns
        Console(width=max(Console().width, wide)).print(rendered)
        print(usage_answer(table, by))


def _nothing(ledger: Path, frame: Any, since: str | None) -> str:
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
    batch_delay: Annotated[str, typer.Option(help="How long a batch takes (model time).")] = "60s",
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
            batch_delay=_seconds(batch_delay, "--batch-delay"),
        )
    except PolicyError as exc:
        _err(f"{policy}: invalid")
        for issue in exc.issues:
            _err(f"  {issue.severity}: {issue}")
        raise typer.Exit(EXIT_INVALID) from None
    except (ValueError, OSError) as exc:
        _err(f"mock-server: {redact(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


def main() -> None:
    """Entry point of the ``keypolicy`` command."""
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
