"""Every SQL statement of the market service, one module per store. Functions take a
connection and return domain values (or numpy arrays for bars), never raw records.

- ``securities`` -- securities and their quotes, listing with filters and keyset pages
- ``bars``       -- daily bars: storage detection, partitions, binary COPY, merge, reads
- ``actions``    -- splits and dividends, their price factors
- ``quotes``     -- the latest quote per security
- ``stats``      -- derived statistics, the universe index, universe-wide reads
- ``loads``      -- the universe-load ledger
"""
