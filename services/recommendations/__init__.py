"""Recommendations context: runs and the immutable BUY/HOLD/SELL calls they publish.

Schema ``recommendations``.
"""
