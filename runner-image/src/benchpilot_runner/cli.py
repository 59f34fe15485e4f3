"""The ``benchpilot`` command: run, shard, report, healthcheck (and cache tools)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import logs
from .redact import scrub
from .contract.fields import SpecError, check_number
from .contract.outcomes import ConfigError, ExitCode

log = logging.getLogger("benchpilot.cli")


def _plan_parser(sub) -> None:
    plan = sub.add_parser("plan", help="estimate cases, memory, requests, tokens, cost and time before running")
    plan.add_argument("manifest")
    plan.add_argument("--pilot", type=int, default=0, metavar="N",
                      help="run N real cases per model first (costs what they cost) and estimate from them")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument("--detect", type=float, metavar="D",
                      help="also say how many instances per cell detect a paired difference D in success rate "
                           "(e.g. 0.05) with 80%% power")
    plan.add_argument("--discordance", type=float, default=0.5, metavar="PSI",
                      help="the share of items two compared cells disagree on (default 0.5, the most two arms "
                           "disagreeing at random do; a report of an earlier run measures it)")


def _report_parser(sub) -> None:
    rep = sub.add_parser("report", help="summarise the results under a URI, deduplicated by case id")
    rep.add_argument("uri", help="results root, run folder or shard folder (any fsspec URI)")
    rep.add_argument("--format", choices=("table", "json"), default="table")
    rep.add_argument("--plot", metavar="FILE.png", help="also draw success rate per model × prompt type")
    rep.add_argument("--html", metavar="FILE.html", help="also write the whole report as one self-contained HTML file")
    rep.add_argument("--reference", metavar="PROMPT_TYPE",
                     help="the prompt type the others are compared with (default: workflow optimal, text2sql zero_shot)")
    rep.add_argument("--max-cases", type=int, default=1000, metavar="N",
                     help="list at most N non-success cases with their details in --html and --format json "
                          "(default 1000)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchpilot", description="Run LLM benchmark sweeps, locally or sharded.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every shard of a BenchmarkRun manifest on this machine")
    run.add_argument("manifest", help="the BenchmarkRun YAML, the very file you would kubectl apply")
    run.add_argument("--output", help="results URI (any fsspec URI); default: spec.output.uri or ./results")
    run.add_argument("--shards", type=int, help="override spec.sharding.shards")
    run.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on 127.0.0.1:PORT")
    run.add_argument("--cache", help="a cache folder made by 'benchpilot cache build' (embedding retrieval)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or summary table")
    run.add_argument("--reuse", action="store_true",
                     help="answer identical requests from earlier results (this run's own and spec.reuse.sources)")
    run.add_argument("--reuse-from", action="append", metavar="URI", default=[],
                     help="also reuse the answers kept under this result URI (repeatable; turns reuse on)")

    _plan_parser(sub)

    shard = sub.add_parser("shard", help="run one shard (the pod entry point; shard from BENCHPILOT_SHARD[S])")
    shard.add_argument("--spec", help="resolved spec path (default $BENCHPILOT_SPEC or /etc/benchpilot/run.json)")

    _report_parser(sub)

    cache = sub.add_parser("cache", help="the shared read-only model and embedding cache")
    csub = cache.add_subparsers(dest="cache_command", required=True)
    build = csub.add_parser("build", help="embed a suite's texts once and write a cache folder")
    build.add_argument("--out", required=True, help="a new (or empty) folder")
    build.add_argument("--suite", help="the suite whose texts to embed (default workflow; see --manifest)")
    build.add_argument("--dataset", help="text2sql: spec.suiteConfig.dataset (a Spider/BIRD-layout folder or URI)")
    build.add_argument("--manifest", help="take the suite and its suiteConfig from this BenchmarkRun manifest")
    build.add_argument("--synthetic-size", type=float, default=0.0, metavar="MB",
                       help="pad the embeddings to this many MiB (for testing and benchmarks)")
    build.add_argument("--instances", type=int, default=100,
                       help="task instances per task type and difficulty to embed (default 100)")
    verify = csub.add_parser("verify", help="check a cache folder against its manifest")
    verify.add_argument("dir")
    from .answers.commands import add_parsers

    add_parsers(sub, csub)

    fp = sub.add_parser("footprint", help="measure base, shared and per-worker memory (JSON)")
    fp.add_argument("--cache", help="cache folder to load as a shard would (default: none)")
    fp.add_argument("--concurrency", type=int, default=32)

    hc = sub.add_parser("healthcheck", help="exit 0 if the local runner's /healthz is healthy")
    hc.add_argument("--url", default="http://127.0.0.1:8080/healthz")
    hc.add_argument("--timeout", type=float, default=3.0)
    return p


def _positive(value: int | None, name: str) -> None:
    if value is not None:
        check_number(value, name, minimum=1, maximum=1_000_000, integer=True)


def _error(message: object) -> int:
    print(f"benchpilot: error: {scrub(str(message))}", file=sys.stderr)
    return int(ExitCode.CONFIG_ERROR)


def _free_port(port: int | None, flag: str) -> None:
    """A port we can listen on, checked before anything runs (an error names the flag)."""
    if port is None:
        return
    check_number(port, flag, minimum=1, maximum=65535, integer=True)
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SpecError(flag, f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from .contract.parse import with_overrides
    from .local import run_local
    from .manifest import load_manifest
    from .suites.base import Retrieval

    spec = with_overrides(load_manifest(args.manifest), output=args.output, shards=args.shards,
                          reuse=args.reuse, reuse_from=tuple(args.reuse_from))
    _free_port(args.metrics_port, "--metrics-port")
    retrieval = Retrieval()
    cache_dir = args.cache or spec.cache_path
    if cache_dir:
        from .resources import CacheError, open_cache

        try:
            retrieval = Retrieval(open_cache(cache_dir, suite=spec.suite))
        except CacheError as exc:
            raise SpecError("--cache" if args.cache else "spec.cache.path", str(exc)) from None
    return asyncio.run(run_local(spec, metrics_port=args.metrics_port, show_progress=not args.no_progress,
                                 retrieval=retrieval))


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from .contract import estimate as E
    from .manifest import load_manifest

    spec = load_manifest(args.manifest)
    check_number(args.pilot, "--pilot", minimum=0, maximum=1000, integer=True)
    check_number(args.discordance, "--discordance", minimum=0, maximum=1, exclusive_min=True)
    if args.detect is not None:
        check_number(args.detect, "--detect", minimum=0, maximum=1, exclusive_min=True)
        if args.detect > args.discordance:
            raise SpecError("--detect", f"{args.detect:g} is more than the discordance {args.discordance:g}: two "
                                        "cells cannot differ on more items than they disagree on (--discordance)")
    if args.pilot:
        from .pilot import run_pilot

        per_case, source = asyncio.run(run_pilot(spec, args.pilot)), f"a pilot of {args.pilot} cases per model"
    else:
        per_case, source = E.from_spec(spec), "spec.estimate"
    est = E.estimate(spec, per_case, source=source)
    est["power"] = E.power(spec, detect=args.detect, discordance=args.discordance)
    print(json.dumps(est, indent=2) if args.format == "json" else E.render(est))
    return 0


def _report_files(report, summary: dict, args: argparse.Namespace) -> str | None:
    """Write --plot and --html; the error message if one cannot be written."""
    for flag, path, write in (("--plot", args.plot, report.plot), ("--html", args.html, report.write_html)):
        if path:
            try:
                write(summary, path)
            except (OSError, ValueError) as exc:
                return f"{flag} {path!r}: cannot write it: {getattr(exc, 'strerror', None) or exc}"
    return None


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    check_number(args.max_cases, "--max-cases", minimum=0, maximum=100_000, integer=True)
    cases = args.max_cases if (args.format == "json" or args.html) else None
    try:
        loaded = report.load(args.uri)
    except FileNotFoundError as exc:
        return _error(exc)
    summary = report.summarize(loaded, reference=args.reference, cases=cases)
    failed = _report_files(report, summary, args)  # before printing anything: an unwritable file is said once
    if failed:
        return _error(failed)
    if args.format == "json":
        print(report.to_json(summary))
    else:
        report.render_table(summary)
    for what, path in (("plot", args.plot), ("report", args.html)):
        if path:
            print(f"{what} written to {path}", file=sys.stderr)
    if summary["unreadable_parts"]:  # never a report that silently leaves rows out
        print(f"benchpilot: warning: {len(summary['unreadable_parts'])} parts could not be read and are left out: "
              f"{', '.join(summary['unreadable_parts'][:5])}", file=sys.stderr)
        return 1
    if summary.get("warning"):
        print(f"benchpilot: warning: {summary['warning']}", file=sys.stderr)
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    from .health import check

    ok, body = check(args.url, args.timeout)
    print(body)
    return 0 if ok else 1


def cmd_cache(args: argparse.Namespace) -> int:
    from .resources import Cache

    if args.cache_command == "explain":
        from .answers.commands import cmd_explain

        return cmd_explain(args)

    if args.cache_command == "build":
        from .cache import build

        if args.synthetic_size < 0 or args.instances < 1:
            return _error("--synthetic-size must be >= 0 and --instances >= 1")
        suite, config = _cache_suite(args)
        try:
            build(args.out, suite=suite, config=config, instances=args.instances, synthetic_mib=args.synthetic_size,
                  log=lambda msg: print(msg, file=sys.stderr))
        except FileExistsError as exc:
            return _error(exc)
        return 0
    cache = Cache(args.dir)
    cache._verify_model()
    print(f"{args.dir}: ok ({cache.manifest['rows']['total']} rows, {cache.manifest['embeddings_mib']} MiB)")
    return 0


def _cache_suite(args: argparse.Namespace) -> tuple[str, dict]:
    """The suite and parsed suiteConfig a cache is built for: from --manifest, or --suite and --dataset."""
    from .contract.fields import Fields
    from .contract.registry import find_suite

    if args.manifest:
        if args.suite or args.dataset:
            raise SpecError("--manifest", "give either --manifest or --suite/--dataset, not both")
        from .manifest import load_manifest

        spec = load_manifest(args.manifest)
        return spec.suite, dict(spec.suite_config)
    name = args.suite or "workflow"
    try:
        suite = find_suite(name)
    except SpecError as exc:
        raise SpecError("--suite", exc.detail) from None
    raw = {"dataset": args.dataset} if args.dataset else {}
    if raw and "dataset" not in suite.config_fields:
        raise SpecError("--dataset", f"suite {name!r} takes no dataset")
    return name, dict(suite.parse_config(Fields(raw, "--dataset", suite.config_fields)))


def cmd_footprint(args: argparse.Namespace) -> int:
    from .footprint import main as footprint

    _positive(args.concurrency, "--concurrency")
    return footprint(args.cache, args.concurrency)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = args.log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        return _error(f"--log-level: {args.log_level[:20]!r} is not one of DEBUG, INFO, WARNING, ERROR")
    logs.setup(level)
    try:
        return _dispatch(args)
    except ConfigError as exc:  # every configuration problem, whichever command: one line, exit 2
        return _error(exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user; the traceback goes to the log at DEBUG
        log.debug("internal error", exc_info=True)
        print(f"benchpilot: internal error: {type(exc).__name__}: {scrub(str(exc))[:300]} "
              "(run with --log-level DEBUG for the traceback)", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args)
    if args.command == "shard":
        from .pod import main_shard

        return main_shard(args.spec)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "healthcheck":
        return cmd_healthcheck(args)
    if args.command == "cache":
        return cmd_cache(args)
    if args.command == "footprint":
        return cmd_footprint(args)
    if args.command == "rescore":
        from .answers.commands import cmd_rescore

        return cmd_rescore(args)
    raise AssertionError(args.command)
