"""Choosing demonstrations and evaluating them: strategies, selectors, retrievers, k-shot evaluation, their report."""
