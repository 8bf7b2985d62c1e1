"""``hpo-bench profile-kernels``: where does sparse inference beat dense, on this machine?

For each weight shape, sparsity, pruning pattern and batch size, times side by side (interleaved,
in rounds until the timing is stable): dense ``F.linear``; torch's own sparse paths (``F.linear``
on a CSR / BSR weight where torch supports it, ``torch.sparse.mm`` on the CSR weight times the
transposed input); and our formats through ``ops.sparse_linear``. ``choice`` is what ``sparsify``
would run: our fastest format if it beats dense by the margin, else dense. The answer is a table,
a JSON file (saved after every point, so an interrupted run continues) and a plot of speedup over
dense versus sparsity (one line per batch size).

measure.py: one point, timed until stable; run.py: the grid, saving and continuing; report.py:
progress lines, table, plot.
"""
from .measure import MARGIN, OURS, TIMING, profile_point, pruned_weight, relative_iqr
from .report import format_table, plot, progress_line
from .run import GRIDS, busy_note, profile_kernels

__all__ = ["GRIDS", "MARGIN", "OURS", "TIMING", "busy_note", "format_table", "plot", "profile_kernels",
           "profile_point", "progress_line", "pruned_weight", "relative_iqr"]
