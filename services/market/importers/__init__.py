"""Adapters that bring real market data in: CSV files (Yahoo and Stooq layouts) and
end-of-day HTTP providers. They parse and fetch; validation and storage are the service's."""
