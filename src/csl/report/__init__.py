"""The pipeline report: a table of variants x metrics, loss curves, accuracy chart, 2-D maps."""
