"""Stage 5, judge: what the measured numbers mean for the user, decided once per variant from the task's metric.

Why a stage: the recommendation, each variant's verdict, the tab text and the INT8 candidate ranking must agree,
so they all read one judgment (judgment.py) and sit after everything they judge.

Modules: judgment (the task metric, its floor, kept or drops), verdict (deploy it instead of FP32?), explain
(the recommendation and the Pareto rule in words), candidates (CandidateProbe: INT8 candidates judged as they are
built, handed to the techniques by the comparison).
"""

__all__ = ["candidates", "explain", "judgment", "verdict"]
