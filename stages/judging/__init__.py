"""Judging: what grades or checks an answer (rubric, templates, scoring, EFT data, sources, text checks)."""
