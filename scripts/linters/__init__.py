"""Bourse's architecture rules as a linter: named rules over the source's syntax tree.

Run ``.venv/bin/python -m scripts.linters`` (``--only RULE,...``, ``--list``). Each rule is
a module here with a ``RULE``; a violation can be waived on its line with
``# lint-skip: <rule-name>`` and a reason (see ``base``). ``tests/test_architecture.py``
runs it over the tree and tests each rule on small bad snippets.
"""
