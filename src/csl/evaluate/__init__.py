"""Evaluation of frozen encoders: features once, then linear probe and weighted kNN."""
