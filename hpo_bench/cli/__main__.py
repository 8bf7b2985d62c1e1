"""``python -m hpo_bench.cli``: the same as the ``hpo-bench`` command."""
from .parser import main

raise SystemExit(main())
