"""Measuring: statistics, agreement, quality gates and IFEval; no data-making stage imports this package."""
