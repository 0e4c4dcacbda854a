"""The operator's command line: ``bourse up|down|status|migrate|user ...``.

It is the one place that knows every part of the platform, so it may import them;
no part imports it.
"""
