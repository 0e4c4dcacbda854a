"""Use cases of the market service (no FastAPI here; they raise domain errors):

- ``stocks``  -- listing, detail, price history, technical analysis
- ``market``  -- overview, sectors, quote snapshots, request/reply answers, end of day
- ``loading`` -- the simulated universe's bulk load; derived statistics and index
- ``imports`` -- CSV files and provider data through validation and an idempotent merge
"""
