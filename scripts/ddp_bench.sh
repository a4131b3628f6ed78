#!/usr/bin/env bash
# One GPU against all the GPUs of this node, with DistributedDataParallel (NCCL) started by torchrun.
# Trains the same preset for a few hundred iterations with 1 process and with N processes (batch per
# process as in the preset, so the N-process run sees N times more samples per step) and prints
# the time per NAE iteration and the training samples per second of each, from the runs' log.jsonl.
# Usage: PRESET=cifar10_ood ITERS=200 OUT=/some/dir bash scripts/ddp_bench.sh   (NPROC defaults to all GPUs)
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${PRESET:-cifar10_ood}; ITERS=${ITERS:-200}; OUT=${OUT:-ddp_bench_out}
NPROC=${NPROC:-$(python -c "import torch; print(torch.cuda.device_count())")}
mkdir -p "$OUT"
ARGS="--preset $PRESET --ae_iters 20 --nae_iters $ITERS --val_every 100000 --ckpt_every 100000 --quiet --device cuda --overwrite"
nae_train $ARGS --out "$OUT/p1" > "$OUT/p1.txt" 2>&1
if [ "$NPROC" -gt 1 ]; then
  torchrun --standalone --nproc_per_node "$NPROC" --no-python nae_train $ARGS --out "$OUT/p$NPROC" > "$OUT/p$NPROC.txt" 2>&1
fi
python - "$OUT" <<'PY'
import json, sys, pathlib
for d in sorted(p for p in pathlib.Path(sys.argv[1]).glob('p*') if p.is_dir()):
    cfg = json.loads((d/'config.json').read_text()); n = int(d.name[1:])
    log = [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines()]
    nae = [r for r in log if r['phase'] == 'nae' and 'loss' in r]
    s = (nae[-1]['time'] - nae[0]['time']) / (nae[-1]['step'] - nae[0]['step'])
    print(f"{n} process(es): {1000*s:.1f} ms per NAE iteration, {n*cfg['batch_size']/s:.0f} training samples/s")
PY
