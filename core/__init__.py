"""QuantLens engine: sizing, quantization and comparison, with no UI imports.

Everything a page shows is computed here so the command line (`python -m core`) and the
tests see exactly what a user sees in the browser.
"""
