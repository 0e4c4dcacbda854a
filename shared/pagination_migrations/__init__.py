"""The table that keeps a part's cursor key (:mod:`shared.pagination`), in each part's schema."""
