"""``python -m hpo_bench``: the same as the ``hpo-bench`` command."""
from .cli import main

raise SystemExit(main())
