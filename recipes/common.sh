#!/usr/bin/env bash
# Shared launcher of the GPU recipes: one environment x one method preset of sampo_verl.main_ppo,
# on vLLM (rollout) + FSDP2 (actor/reference), 1 node x 8 GPUs by default.
#
#   bash recipes/common.sh ENV METHOD [hydra overrides...]
#     ENV:    a registered environment: sokoban | frozenlake | alfworld | your own (VERL_USE_EXTERNAL_MODULES)
#     METHOD: a preset of sampo_verl/conf/method (grpo, gspo, sapo, gigpo, sampo, cispo, sapo_seqmask, ...)
#
# recipes/<env>_<method>.sh call this; trailing hydra overrides pass through last, so they win.
# Environment variables, with their defaults:
#   MODEL           Qwen/Qwen2.5-1.5B-Instruct  HF id or local path (Qwen/Qwen3-4B, a behaviour-cloned checkpoint)
#   NNODES          1
#   NGPUS_PER_NODE  8
#   ROLLOUT_TP      1                           vLLM tensor parallel size per replica
#   DATA_DIR        $HOME/data/sampo_verl/<env> train/val parquet, written by sampo-verl dataset when missing
#                                               (<env> = alfworld_official with ALFWORLD_DATA)
#   ALFWORLD_DATA   unset                       official games root (alfworld-download); unset: offline games
#   TOTAL_STEPS     150                         training steps; the train split holds one task per step and slot
#   LOGGER          [console,wandb]
#   PROJECT         sampo_verl
#   EXPERIMENT      <env>_<method>_<model name>
#   TRAINER_MODE    sampo                       sampo (sync) | sampo_colocate_async | sampo_separate_async (docs/async.md)
#   MAX_STALENESS   2                           async modes: most weight versions a trajectory may span, older
#                                               groups are dropped (null: no limit)
#   ROLLOUT_GPUS    NGPUS_PER_NODE/2            sampo_separate_async: GPUs of each node that serve rollouts (the
#                                               rest train)
#   SYNC_STEPS      4                           sampo_separate_async: mini-batches per weight sync (each step's
#                                               batch is split into this many; they must divide it)
#   SAMPO_DRY_RUN   unset                       1: print the two commands, one argument per line, run nothing
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: bash $0 ENV METHOD [hydra overrides...]" >&2
    exit 2
fi
env_name=$1
method=$2
shift 2
repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Per environment, from the config the run composes (python3 -m sampo_verl.recipe): the config groups
# env=<env> (sampo_verl/conf/env/<env>.yaml: batch, turn budgets, group size, the tasks' options; env=base
# for an environment without a file), env_data=<env>_official when $<ENV>_DATA is set and such a file exists
# (ALFWORLD_DATA, WEBSHOP_DATA), and with method=<method> the release's changes to that method on that
# environment (env_method/<env>_<method>.yaml). Printed: max_turns, batch_size, env_options /
# val_env_options (JSON), data_name (the data folder) and config_groups (passed on to training).
settings=$(python3 -m sampo_verl.recipe "$env_name" "$method" "$@") || exit 2
eval "$settings"

MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
NNODES=${NNODES:-1}
NGPUS_PER_NODE=${NGPUS_PER_NODE:-8}
ROLLOUT_TP=${ROLLOUT_TP:-1}
DATA_DIR=${DATA_DIR:-$HOME/data/sampo_verl/$data_name}
TOTAL_STEPS=${TOTAL_STEPS:-150}
LOGGER=${LOGGER:-[console,wandb]}
PROJECT=${PROJECT:-sampo_verl}
EXPERIMENT=${EXPERIMENT:-${env_name}_${method}_${MODEL##*/}}
TRAINER_MODE=${TRAINER_MODE:-sampo}
MAX_STALENESS=${MAX_STALENESS:-2}
ROLLOUT_GPUS=${ROLLOUT_GPUS:-$((NGPUS_PER_NODE / 2))}
SYNC_STEPS=${SYNC_STEPS:-4}

# verl's asynchronous trainers (docs/async.md): staleness bounded by dropping; separate_async also splits
# each node's GPUs between training and rollout and syncs weights over NCCL every SYNC_STEPS mini-batches.
mode_args=(trainer.v1.trainer_mode="$TRAINER_MODE")
train_gpus=$NGPUS_PER_NODE
case "$TRAINER_MODE" in
    sampo) ;;
    sampo_colocate_async)
        mode_args+=(trainer.v1.sampler.max_off_policy_threshold="$MAX_STALENESS") ;;
    sampo_separate_async)
        train_gpus=$((NGPUS_PER_NODE - ROLLOUT_GPUS))
        mode_args+=(
            trainer.v1.sampler.max_off_policy_threshold="$MAX_STALENESS"
            trainer.v1.separate_async.parameter_sync_step="$SYNC_STEPS"
            actor_rollout_ref.actor.ppo_mini_batch_size=$((batch_size / SYNC_STEPS))
            actor_rollout_ref.rollout.nnodes="$NNODES"
            actor_rollout_ref.rollout.n_gpus_per_node="$ROLLOUT_GPUS"
            actor_rollout_ref.rollout.checkpoint_engine.backend=nccl
        ) ;;
    *)
        echo "TRAINER_MODE=$TRAINER_MODE: one of sampo, sampo_colocate_async, sampo_separate_async" >&2
        exit 2 ;;
esac

data_args=(
    --env "$env_name"
    --train $((TOTAL_STEPS * batch_size))
    --val 128
    --out "$DATA_DIR"
    --max-turns "$max_turns"
    --env-options "$env_options"
)
if [ -n "$val_env_options" ]; then
    data_args+=(--val-env-options "$val_env_options")
fi

# Testbed defaults that come from sampo_verl/conf/sampo_ppo.yaml and are not repeated here: KL loss
# low_var_kl 0.01, invalid-action penalty 0.1; history window 2 and the env-call timeout come from
# examples/agent_loops.yaml. One PPO mini-batch = batch_size x group_size turn samples (env/base.yaml); every
# turn is one sample, so a step makes several updates. Micro-batches are packed by tokens (verl's
# default budget: 16384 tokens per GPU). As the ARLArena release's scripts: lr 1e-6, entropy coefficient
# 0.001, validation sampled at temperature 0.6 / top-p 0.95 / top-k 20.
overrides=(
    method="$method"
    "${config_groups[@]}"
    data.train_files="$DATA_DIR/train.parquet"
    data.val_files="$DATA_DIR/val.parquet"
    actor_rollout_ref.model.path="$MODEL"
    actor_rollout_ref.actor.strategy=fsdp2
    actor_rollout_ref.actor.optim.lr=1e-6
    actor_rollout_ref.actor.entropy_coeff=0.001
    actor_rollout_ref.actor.use_dynamic_bsz=true
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$repo_dir/examples/agent_loops.yaml"
    actor_rollout_ref.rollout.val_kwargs.do_sample=true
    actor_rollout_ref.rollout.val_kwargs.temperature=0.6
    actor_rollout_ref.rollout.val_kwargs.top_p=0.95
    actor_rollout_ref.rollout.val_kwargs.top_k=20
    trainer.nnodes="$NNODES"
    trainer.n_gpus_per_node="$train_gpus"
    trainer.logger="$LOGGER"
    trainer.project_name="$PROJECT"
    trainer.experiment_name="$EXPERIMENT"
    trainer.total_training_steps="$TOTAL_STEPS"
    trainer.test_freq=10
    trainer.save_freq=50
    "${mode_args[@]}"
    "$@"
)

if [ -n "${SAMPO_DRY_RUN:-}" ]; then
    echo "$ python3 -m sampo_verl dataset"
    printf '%s\n' "${data_args[@]}"
    echo "$ python3 -m sampo_verl.main_ppo"
    printf '%s\n' "${overrides[@]}"
    exit 0
fi

set -x
if [ ! -f "$DATA_DIR/train.parquet" ] || [ ! -f "$DATA_DIR/val.parquet" ]; then
    python3 -m sampo_verl dataset "${data_args[@]}"
fi
python3 -m sampo_verl.main_ppo "${overrides[@]}"
