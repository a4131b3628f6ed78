#!/usr/bin/env bash
# Table 1 at CPU scale: one `nae_train --preset mnist_holdout_cpu` run per held-out digit (and seed),
# two runs at a time, one thread each. Each run directory holds metrics.json (AE = the pre-trained
# net, NAE = the ConstantGray-selected NAE weights), log.jsonl and model.pt.
#   bash scripts/exp_mnist_holdout.sh [OUT=runs/mnist_holdout_cpu] [DIGITS="0 1 ... 9"] [SEEDS="0"] [MODEL=nae] [EXTRA="--lr_nae 1e-4"]
# Then: python scripts/exp_mnist_holdout.py --collect OUT nae_nbdev/records/mnist_holdout_cpu.json
set -euo pipefail
OUT=${OUT:-runs/mnist_holdout_cpu}; DIGITS=${DIGITS:-"0 1 2 3 4 5 6 7 8 9"}; SEEDS=${SEEDS:-0}
MODEL=${MODEL:-nae}; EXTRA=${EXTRA:-}; JOBS=${JOBS:-2}; DATA=${NAE_DATA:?set NAE_DATA to the folder that holds MNIST (torchvision layout)}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
for s in $SEEDS; do for d in $DIGITS; do echo "$d $s"; done; done |
  xargs -P "$JOBS" -L 1 bash -c 'd=$0; s=$1; dir='"$OUT"'/'"$MODEL"'-h$d-s$s
    [ -f $dir/metrics.json ] && exit 0
    /usr/bin/time -f "%e s wall" nae_train --preset mnist_holdout_cpu --model '"$MODEL"' --holdout $d --seed $s \
      --data_root '"$DATA"' --out $dir --overwrite --quiet '"$EXTRA"' > $dir.log 2>&1 || echo "FAILED $dir"'
