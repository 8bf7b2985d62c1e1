"""The ``hpo-bench`` argument parser and entry point."""
from __future__ import annotations

import argparse
import sys

from .args import EXIT_USAGE, NotDone, UsageError

EXIT_MACHINE = 1  # a fault of the machine (disk, network): rerunning continues
from .commands import (cmd_cache, cmd_compare, cmd_methods, cmd_problems, cmd_profile_kernels, cmd_report, cmd_run,
                       cmd_suite, cmd_worker)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hpo-bench", description="Find the best way to prune a neural network with the fewest fine-tuning runs, "
                                "and prove which search method gets there first.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", help="directory for JSON results (and the study database)")
        sp.add_argument("--json", action="store_true", help="print the results as JSON")

    def cache_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cache", help="checkpoint cache directory (default $HPO_BENCH_CACHE, else ~/.cache/hpo-bench)")
        sp.add_argument("--no-cache", action="store_true", help="evaluate everything afresh, store nothing")
        sp.add_argument("--cache-max-gb", type=float, default=None,
                        help="evict least recently used checkpoints beyond this many GiB (default 10; inf: no cap)")

    def scale_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--workers", type=int, default=None, help="run the runs in N worker processes on this machine "
                        "(one per core, or per GPU with --device cuda); the result is the one a single process gets")
        sp.add_argument("--submit", action="store_true", help="only queue the runs (with --storage URL: in that "
                        "database) for `hpo-bench worker` processes anywhere; `hpo-bench report --storage` reads them")

    def search_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--problem", required=True, help="a registered problem (see `hpo-bench problems`)")
        sp.add_argument("--budget", type=int, default=None, help="trials per method and seed")
        sp.add_argument("--budget-epochs", type=int, default=None, help="nominal fine-tuning epochs per method and seed")
        sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where evaluation runs")
        sp.add_argument("--storage", help="Optuna storage: a journal file (*.log), a SQLite path or a database URL "
                        "(default OUT/studies.log)")
        sp.add_argument("--eval-seed", type=int, default=0, help="seed of fine-tuning (data order)")
        cache_opts(sp)

    sp = sub.add_parser("problems", help="list the problems")
    common(sp)
    sp.set_defaults(func=cmd_problems)
    sp = sub.add_parser("methods", help="list the search methods")
    common(sp)
    sp.set_defaults(func=cmd_methods)
    sp = sub.add_parser("run", help="one search: best config within the budget")
    common(sp)
    search_opts(sp)
    sp.add_argument("--method", default="tpe")
    sp.add_argument("--seed", type=int, default=0, help="the search method's seed")
    sp.add_argument("--workers", type=int, default=1, help="trials evaluated at once in this one search (threads; "
                    "never more than the budget in all). It changes how a method behaves: recorded with the results")
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("compare", help="methods x seeds at an equal budget")
    common(sp)
    search_opts(sp)
    sp.add_argument("--methods", default="grid,random,gp,tpe", help="comma-separated method names")
    sp.add_argument("--seeds", default="5", help="a count (5), a list (0,3,7) or a range (0-4)")
    sp.add_argument("--name", help="the comparison's name in the run queue (default: the --out folder's name)")
    scale_opts(sp)
    sp.set_defaults(func=cmd_compare)
    sp = sub.add_parser("profile-kernels", help="time sparse inference against dense and torch.sparse")
    common(sp)
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where the kernels run")
    size = sp.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small grid (seconds), e.g. to check the setup")
    size.add_argument("--full", action="store_true", help="the big grid: 144 points, 3 shapes up to 4096x4096, batch up "
                      "to 256 (tens of minutes on 2 cores; the default grid, 30 points, takes minutes)")
    sp.add_argument("--fresh", action="store_true", help="measure every point again instead of continuing "
                    "OUT/profile.json (the old file is kept as profile.previous.json)")
    sp.set_defaults(func=cmd_profile_kernels)
    sp = sub.add_parser("report", help="report.md, plots and summary.json of a compare's or a suite's --out DIR, "
                        "or of a comparison or suite submitted to --storage URL")
    sp.add_argument("dir", nargs="?", help="a directory holding compare.json (a comparison) or suite.json (a suite); "
                    "with --storage: the name of a submitted comparison or suite (default: the only one there)")
    sp.add_argument("--storage", help="read a submitted comparison or suite from this database URL (or local queue) "
                    "and write its report to --out (default runs/NAME)")
    sp.add_argument("--out", help="with --storage: where to write the report")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_report)
    sp = sub.add_parser("worker", help="take queued runs from --storage and run them until none is left")
    sp.add_argument("--storage", required=True, help="the database URL runs were submitted to (postgresql://...), "
                    "or a local --out directory (its queue.sqlite3)")
    sp.add_argument("--device", default="auto", help="where evaluation runs: auto, cpu, cuda or cuda:N")
    sp.add_argument("--forever", action="store_true", help="keep polling for new runs instead of stopping")
    sp.add_argument("--poll", type=float, default=2.0, help="seconds between looks at the queue while waiting")
    sp.add_argument("--name", action="append", help="only this comparison (repeatable; default: every one)")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")
    cache_opts(sp)
    sp.set_defaults(func=cmd_worker, out=None)
    sp = sub.add_parser("suite", help="run the comparisons a suite file (TOML) names")
    common(sp)
    sp.add_argument("file", help="a suite file, e.g. benchmarks/suites/default.toml")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where evaluation runs")
    sp.add_argument("--eval-seed", type=int, default=0, help="seed of fine-tuning (data order)")
    sp.add_argument("--storage", help="a database URL (postgresql://...) for every comparison's studies "
                    "(default OUT/NAME/studies.log)")
    scale_opts(sp)
    cache_opts(sp)
    sp.set_defaults(func=cmd_suite)
    sp = sub.add_parser("cache", help="inspect or clean the checkpoint cache")
    sp.add_argument("action", choices=["stats", "verify", "clear"])
    sp.add_argument("--cache", help="cache directory (default $HPO_BENCH_CACHE, else ~/.cache/hpo-bench)")
    sp.add_argument("--storage", help="the database URL whose cache index to use (what workers given "
                    "--storage URL share; --cache is then the blob directory)")
    sp.add_argument("--json", action="store_true", help="print the results as JSON")
    sp.set_defaults(func=cmd_cache, out=None)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "budget", None) is None and getattr(args, "budget_epochs", None) is None and args.command in ("run", "compare"):
        from ..harness.budget import DEFAULT_TRIALS

        args.budget = DEFAULT_TRIALS
    try:
        args.func(args)
    except (UsageError, ValueError) as e:
        print(f"hpo-bench: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NotDone as e:
        print(f"hpo-bench: {e}", file=sys.stderr)
        return EXIT_MACHINE
    except KeyboardInterrupt:
        print("hpo-bench: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    except OSError as e:  # the machine, not the input: a full disk, a lost mount
        print(f"hpo-bench: error: {e}; every finished trial is kept: fix it and rerun the same command "
              "to continue", file=sys.stderr)
        return EXIT_MACHINE
    return 0
