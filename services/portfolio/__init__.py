"""Portfolio context: portfolios, the transaction ledger, positions and rebalancing.

Schema ``portfolio``.
"""
