#!/usr/bin/env bash
# Start a dae_jax training run on every host of a Cloud TPU VM pod slice.
#
#   scripts/launch_tpu_pod.sh TPU_NAME ZONE WORKDIR CONFIG [--config.key=value ...]
#   e.g. scripts/launch_tpu_pod.sh my-v4-32 us-central2-b gs://bucket/runs/mvsec_distill \
#        configs/paper.py:mvsec,recdav2,distill --config.data.dataset_dir=gs://bucket/tfds/mvsec/tencode/1.0.0
#
# Every host runs the same command; launch.py sees the pod environment and calls jax.distributed.initialize(),
# each host reads its own share of the data, and only host 0 writes logs and summaries. The repository must be
# on every host (the first command clones/installs it). Preemption sends SIGTERM: the run saves and exits, and
# the same command resumes from WORKDIR/checkpoints.
set -euo pipefail
TPU_NAME=$1; ZONE=$2; WORKDIR=$3; CONFIG=$4; shift 4
REPO=${REPO:-https://github.com/YOUR_ORG/dae_jax.git}
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e
  [ -d dae_jax ] || git clone $REPO dae_jax
  cd dae_jax && python3 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements.txt 'jax[tpu]'
  python launch.py --config=$CONFIG --workdir=$WORKDIR --mode=train $*
"
