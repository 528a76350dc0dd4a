"""Reference values for av's statistics (Sources/Evaluation/Statistics.swift), from scipy and
statsmodels: Wilson score intervals, normal quantiles and McNemar's exact test.

    python make_statistics_reference.py > statistics_reference.json
"""
import json

import numpy as np
from scipy.stats import norm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

wilson = []
for successes, trials, confidence in [
    (0, 1, 0.95), (1, 1, 0.95), (24, 48, 0.95), (39, 48, 0.95), (38, 48, 0.95), (0, 48, 0.95),
    (48, 48, 0.95), (7, 12, 0.9), (7, 12, 0.99), (1, 1000, 0.95), (999, 1000, 0.95), (3, 7, 0.8),
    (500, 1000, 0.999),
]:
    lo, hi = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    wilson.append({"successes": successes, "trials": trials, "confidence": confidence,
                   "lower": float(lo), "upper": float(hi)})

quantiles = [{"p": p, "z": float(norm.ppf(p))}
             for p in [1e-12, 1e-6, 0.001, 0.01, 0.02425, 0.025, 0.05, 0.3, 0.5, 0.7, 0.975, 0.995, 1 - 1e-9]]

mcnemar_cases = []
for b, c in [(0, 0), (0, 1), (1, 0), (3, 3), (0, 5), (2, 9), (10, 4), (25, 40), (100, 130), (0, 20), (7, 1)]:
    table = np.array([[5, b], [c, 5]])
    mcnemar_cases.append({"onlyFirst": b, "onlySecond": c,
                          "p": float(mcnemar(table, exact=True).pvalue)})

print(json.dumps({"wilson": wilson, "normalQuantile": quantiles, "mcnemar": mcnemar_cases}, indent=1))
