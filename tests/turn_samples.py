"""Turn samples (the extra_fields of the agent loop) shared by the agent and trainer tests."""


def turn(traj, step, reward, anchor="s", step_reward=0.0, valid=True, won=False):
    return {
        "traj_uid": traj,
        "step": step,
        "anchor": anchor,
        "step_reward": step_reward,
        "episode_reward": reward,
        "action_valid": valid,
        "format_valid": valid,
        "won": won,
    }


# group "sig": rewards differ; "flat": equal rewards and equal steps (no signal at all);
# "steps": equal episode rewards, but the same anchor led to different step returns (GiGPO signal)
TABLE = {
    "sig_0_0": turn("sig_0", 0, 1.0, step_reward=1.0),
    "sig_1_0": turn("sig_1", 0, 0.0),
    "flat_0_0": turn("flat_0", 0, 0.0),
    "flat_1_0": turn("flat_1", 0, 0.0),
    "steps_0_0": turn("steps_0", 0, 1.0, anchor="x", step_reward=1.0),
    "steps_0_1": turn("steps_0", 1, 1.0, anchor="y", step_reward=0.0),
    "steps_1_0": turn("steps_1", 0, 1.0, anchor="x", step_reward=0.0),
    "steps_1_1": turn("steps_1", 1, 1.0, anchor="z", step_reward=0.0),
}
