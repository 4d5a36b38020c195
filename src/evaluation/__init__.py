"""Evaluation: metrics over a data set, and eval.py's checkpoint/folder/MINDIR evaluation."""
