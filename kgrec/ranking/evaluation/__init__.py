"""Evaluation: the cold-start protocol, baselines, metrics and report (evaluation.md)."""
