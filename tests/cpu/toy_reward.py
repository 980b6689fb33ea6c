"""Toy reward for the CPU end-to-end run: deterministic and varied within a GRPO group,
so advantages are non-zero and the policy gets a gradient."""


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """1 if the target word appears in the response, else a byte-sum hash in [0, 0.9]."""
    if ground_truth in solution_str:
        return 1.0
    return (sum(solution_str.encode()) % 10) / 10
