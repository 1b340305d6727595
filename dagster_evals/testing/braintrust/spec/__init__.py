"""Braintrust's published OpenAPI spec, as a vendored extract (see `openapi_extract.json`'s `x-source`).

Regenerate with `scripts/extract_braintrust_spec.py`.
"""
