"""Market data context: securities, prices and quotes (schema ``market``)."""
