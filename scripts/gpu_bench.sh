#!/usr/bin/env bash
# The GPU benchmark in one short run, for a session that has a CUDA GPU (about 5 minutes on an H100-class card).
# Writes one JSON file per variant to $OUT (default: ./gpu_bench_out) and prints a summary:
#   default.json     paper setting (Conv28 MNIST, batch 128, 10 z + 50 x steps) and CIFAR-10 Conv32, every figure,
#                    plus 422 consecutive iterations = one full MNIST NAE epoch (compare: ~10 min on a V100, paper C.2).
#                    PyTorch's defaults: fp32 matmuls, TF32 convolutions (so the maths check uses its 3e-2 tolerance)
#   tf32.json        the same with TF32 matmuls as well inside the chains (--fastmath)
#   cudagraphs.json  the chains' energy gradient through torch.compile(mode='reduce-overhead'), i.e. CUDA graphs
# Usage: OUT=/some/dir bash scripts/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_bench_out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python -c "import torch, sys; ok = torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name(0) if ok else 'NO CUDA DEVICE'); sys.exit(0 if ok else 1)" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
B="python -m nae_nbdev.bench --device cuda --json"
t0=$SECONDS
$B --settings paper,cifar --repeats 5 --iters 422 --out "$OUT/default.json" > /dev/null 2> "$OUT/default.err" || echo "default run failed (see default.err)"
echo "default done at $((SECONDS-t0))s"
$B --settings paper,cifar --repeats 5 --fastmath --out "$OUT/tf32.json" > /dev/null 2> "$OUT/tf32.err" || echo "tf32 run failed (see tf32.err)"
echo "tf32 done at $((SECONDS-t0))s"
timeout 300 $B --settings paper --repeats 5 --noref --compile reduce-overhead --out "$OUT/cudagraphs.json" > /dev/null 2> "$OUT/cudagraphs.err" || echo "cudagraphs run failed (see cudagraphs.err)"
echo "cudagraphs done at $((SECONDS-t0))s"
python - "$OUT" <<'PY'
import json, sys, pathlib
for f in sorted(pathlib.Path(sys.argv[1]).glob('*.json')):
    d = json.loads(f.read_text())
    for r in d['results']:
        c = r.get('check', {})
        print(f"{f.stem:11s} {r['setting']:6s} iter {r['iter_ms']:7.1f} ms (z {r['z_chain_ms']:.1f} x {r['x_chain_ms']:.1f} upd {r['update_ms']:.1f})"
              f" | ref {r.get('ref_iter_ms', float('nan')):7.1f} ms x{r.get('speedup', float('nan')):.2f} | AE {r['ae_step_ms']:.2f} ms"
              f" | {r['langevin_img_steps_per_s']:.3g} img*steps/s | score {r['score_img_per_s']:.3g} img/s | {r['peak_mem_mb']:.0f} MiB"
              f" | chains {r['gflops_chains']:.0f} GFLOP/s = {r['chains_frac_matmul']:.0%} of matmul {r['matmul_gflops']:.0f}"
              + (f" | {r['iters']} iters {r['iters_s']:.1f} s" if 'iters' in r else '')
              + (f" | maths {'OK' if c.get('ok') else 'FAILED'}" if c else '') + (f" | compile fell back" if r.get('compile_fell_back') else ''))
PY
