"""Resilience suites: hostile input, load, faults and concurrency, with repeatable figures.

``python -m resilience.run {hostile,load,faults,concurrency,all} [--short]`` (see the README's
"Reliability" section); ``tests/test_resilience_*.py`` run the short versions.
"""
