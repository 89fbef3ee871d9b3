"""The spec as a judge: does another TNT implementation compute what tnt-ref computes, and under
which conventions? (``tnt-ref conform``; ``docs/conformance.md``.)

* :mod:`.conventions` — the convention space as data, each value tagged;
* :mod:`.cases` — the cases (the ``tnt-ref vectors`` models, a bias, a convolution with several
  output locations and a non-square kernel, 3- and 4-way tensors, several EMA steps);
* :mod:`.layouts` — the maps between an implementation's arrays and tnt-ref's;
* :mod:`.reference` — tnt-ref's answers, from :func:`tnt_ref.optim.tnt` configured by a setting;
* :mod:`.adapters` — the adapter contract, tnt-ref itself and deliberately broken implementations;
* :mod:`.harness` — :func:`conform`, the search and the report.

Framework-free: NumPy in and out.
"""

from .adapters import BROKEN, BUILTIN, TntRef, layer_view, reference_adapter
from .cases import CASE_NAMES, Batch, Case, build_cases
from .conventions import CONVENTIONS, DEFAULT_SETTING, QUANTITIES, Convention, all_settings, check_setting
from .harness import TOL, Report, conform

__all__ = [
    "BROKEN", "BUILTIN", "TntRef", "layer_view", "reference_adapter",
    "CASE_NAMES", "Batch", "Case", "build_cases",
    "CONVENTIONS", "DEFAULT_SETTING", "QUANTITIES", "Convention", "all_settings", "check_setting",
    "TOL", "Report", "conform",
]
