"""``hpo-bench``: the command line (parser.py: arguments and entry point; commands.py: one function
per command; args.py: arguments to objects, bad input to one-line errors; progress.py).

    hpo-bench problems                      the registered problems
    hpo-bench methods                       the registered search methods
    hpo-bench run --problem P --method M --budget B [--seed S]
    hpo-bench compare --problem P --methods a,b,c --budget B --seeds N
    hpo-bench profile-kernels [--device cpu|cuda] [--quick|--full]   sparse inference vs dense, here
    hpo-bench report DIR                    report.md, plots and summary.json of a compare's DIR
    hpo-bench suite FILE.toml               the comparisons a suite file names, each with its report

Every command takes ``--out DIR`` (JSON results written there) and ``--json`` (print that JSON).
Bad input ends with one line on stderr and exit status 2, never a traceback; rerunning a command
with the same ``--out`` continues its studies instead of starting over.
"""
from .parser import build_parser, main

__all__ = ["build_parser", "main"]
