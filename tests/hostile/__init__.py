"""Hostile conditions: faults, throttling, bad input, secret hygiene, local vault security, concurrency.

Run alone with the figures table: ``venv/bin/python -m tests.hostile.figures`` (any pytest run that includes
these tests prints the table at the end).
"""
