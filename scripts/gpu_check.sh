#!/usr/bin/env bash
# One unattended check of a CUDA machine, in under 9 minutes on one GPU. Writes one JSON file, $OUT/gpu_check.json
# (OUT defaults to ./gpu_check_out), with pass/fail/skip and seconds for each item, and never stops at the first failure
# (each item's whole output goes to $OUT/logs/NAME.log):
#   versions        torch, CUDA, GPU name, nae_nbdev
#   bench           nae_bench --device cuda --json (paper and CIFAR-10 settings, with the reference and the maths check)
#   epoch_bench     100 consecutive NAE iterations at the paper's settings (batch 128, Conv28; an MNIST epoch is 422),
#                   timed by nae_bench on random images; the JSON adds the ms per iteration and the projected epoch
#   mnist_epoch     the same epoch on the real MNIST through nae_train, read from $NAE_DATA; skipped, with a message,
#                   when NAE_DATA holds no MNIST (a GPU machine may have no internet, so nothing is downloaded)
#   fast_tier       nbdev_test --flags cuda: the fast tier with the cuda-flagged cells switched on
# With --perf (or when named in --only), the speed figures too, each timed alone:
#   bench_eager     the bench's two settings run eagerly (no CUDA graph: neither the chains nor the update), against `bench`
#   chain_steps     ms per visible-chain step at batch 128 and 1024: eager and captured, TF32 and bf16
#   concurrency     aggregate NAE iterations/s of 1 and of 10 processes training the paper's setting at once, without
#                   NVIDIA MPS (--mps off), then of 10 with it (--mps auto: a private MPS daemon where one can start;
#                   each row's mps and mps_note say whether it ran and why not)
# Only when named in --only (it fills a GPU slot alone):
#   table1_gpu      nbs/51_mnist_holdout.ipynb alone at NAE_SCALE=gpu: all ten digits of Table 1 at the paper's network,
#                   batch and sampler on the real MNIST, in about 8 minutes on one H200 (--only versions,table1_gpu)
#   table4_gpu      nbs/52_mnist_ood.ipynb alone at NAE_SCALE=gpu: one Table 4 run on all of MNIST at the paper's network,
#                   batch and sampler (mnist_ood_gpu), projected to fit the same slot (--only versions,table4_gpu); outlier
#                   sets missing from NAE_DATA (Omniglot, FashionMNIST) are skipped, nothing is downloaded
#   smoke:<nb>      each experiment notebook (nbs/5*.ipynb, nbs/60_demo.ipynb) copied alone into an empty folder and
#                   run top to bottom with NAE_SCALE=smoke; the JSON lists its slowest cells
# The timed items run first and alone (their figures are the GPU's alone); then the fast tier and the notebooks run side
# by side, with the CPU threads shared out among them (their seconds are marked shared: true). Each item has a timeout,
# cut further so that the whole check ends within its 530 s budget. Nothing is downloaded (NAE_DOWNLOAD=0): a GPU
# machine may have no internet, and the notebooks skip what needs data they cannot find.
# Usage: bash scripts/gpu_check.sh [--dry-run] [--only a,b] [--also NAME=COMMAND ...] [--device cuda|cpu]
#   --dry-run   write the plan (every item and its command) to the JSON and stop; works without a GPU
#   --device    cpu rehearses the machinery on a machine without a GPU (the bench items then use tiny sizes)
# Without CUDA (and without --dry-run or --device cpu) it says so, writes the JSON, and exits with status 2.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-gpu_check_out} PYTHONUNBUFFERED=1 MPLBACKEND=Agg NAE_DOWNLOAD=0
mkdir -p "$OUT"
exec python3 - "$@" <<'PY'
import argparse, json, os, shlex, shutil, signal, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

p = argparse.ArgumentParser(prog='gpu_check.sh')
p.add_argument('--dry-run', action='store_true', help='write the plan and stop')
p.add_argument('--only', default='', help='comma-separated item names (smoke:* matches every notebook)')
p.add_argument('--also', action='append', default=[], help='NAME=COMMAND: an extra shell command to check')
p.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
p.add_argument('--perf', action='store_true', help='also the speed figures (bench_eager, chain_steps, concurrency)')
a = p.parse_args()
OUT, T0, BUDGET = Path(os.environ['OUT']), time.time(), 530
OUT.mkdir(parents=True, exist_ok=True)
report = dict(script='scripts/gpu_check.sh', started=time.strftime('%Y-%m-%d %H:%M:%S'), budget_s=BUDGET,
              device=a.device, dry_run=a.dry_run, items=[])

import site
# The JSON is meant to be kept (a project keeps its GPU runs as records): it names no folder of the machine. $OUT and the
# checkout are written relative, Python's library folders (tracebacks) as <site-packages>.
_MACHINE = sorted({(str(OUT.resolve()) + '/', '$OUT/'), (os.getcwd() + '/', '')} |
                  {(p.rstrip('/') + '/', '<site-packages>/') for p in [*sys.path, *site.getsitepackages()]
                   if p and os.path.isabs(p) and os.path.isdir(p) and not p.startswith(os.getcwd())},
                  key=lambda r: -len(r[0]))                  # the longest prefix first
def scrub(text:str) -> str:
    for old, new in _MACHINE: text = text.replace(old, new)
    return text

def save():
    it = report['items']
    report.update(total_s=round(time.time() - T0, 1), passed=sum(i['status'] == 'pass' for i in it),
                  failed=sum(i['status'] in ('fail', 'timeout') for i in it), skipped=sum(i['status'] == 'skip' for i in it))
    (OUT/'gpu_check.json').write_text(scrub(json.dumps(report, indent=1)))

try:
    import torch
    report.update(torch=torch.__version__, cuda=torch.cuda.is_available(), cuda_version=torch.version.cuda,
                  gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as e: report.update(torch=None, cuda=False, gpu=None, import_error=repr(e))
try:
    import nae_nbdev; report['nae_nbdev'] = nae_nbdev.__version__
except Exception as e: report['nae_nbdev'] = f'not importable: {e!r}'

cpu = a.device == 'cpu'
dev = f'--device {a.device}'
nae_data = os.environ.get('NAE_DATA', '')
has_mnist = bool(nae_data) and (Path(nae_data)/'MNIST'/'raw'/'train-images-idx3-ubyte').exists()
nbs = sorted(str(f) for f in Path('nbs').glob('5*.ipynb')) + (['nbs/60_demo.ipynb'] if Path('nbs/60_demo.ipynb').exists() else [])

# (name, shell command, timeout s, phase: 'timed' runs alone and first, 'parallel' side by side; skip reason or None)
bench_sizes = '--tiny' if cpu else '--settings paper,cifar --repeats 3'
epoch_sizes = '--settings tiny --repeats 1 --iters 20 --noref' if cpu else '--settings paper --repeats 1 --iters 100 --noref'
chain_sizes = '--settings tiny --chains 8 --repeats 1' if cpu else '--settings paper --chains 128,1024'
conc_sizes = '--settings tiny --concurrent 1,2 --seconds 1' if cpu else '--settings paper --concurrent 1,10 --seconds 10'
conc_mps = '--settings tiny --concurrent 2 --seconds 1' if cpu else '--settings paper --concurrent 10 --seconds 10'
cores = os.cpu_count() or 2
n_par = 1 + len(nbs)                                  # the fast tier and the notebooks share the CPU
par_threads = max(1, cores // n_par)
plan = [
    ('versions', "python3 -c \"import torch, nae_nbdev; print('torch', torch.__version__, 'cuda', torch.version.cuda, "
                 "torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', 'nae_nbdev', nae_nbdev.__version__)\"",
     30, 'timed', None),
    ('bench', f'nae_bench {dev} --json {bench_sizes} --out {OUT}/bench.json', 70, 'timed', None),
    ('epoch_bench', f'nae_bench {dev} --json {epoch_sizes} --out {OUT}/epoch_bench.json', 60, 'timed', None),
    ('mnist_epoch', f'nae_train --preset {"mnist_holdout_cpu" if cpu else "mnist_holdout"} --holdout 9 --data_root "$NAE_DATA" '
                    f'{dev} --ae_iters {5 if cpu else 20} --nae_iters {5 if cpu else 422} --val_every 1000000 '
                    f'--ckpt_every 1000000 --neg_every none --quiet --overwrite --out {OUT}/mnist_epoch', 160, 'timed',
     None if has_mnist else 'NAE_DATA does not name a folder with MNIST/raw/ (torchvision layout): the real-data epoch '
                            'is skipped (a GPU machine may have no internet to --download it; set NAE_DATA to a copy to '
                            'run it; epoch_bench times the same 422 iterations on random images)'),
    ('fast_tier', f'OMP_NUM_THREADS=1 nbdev_test --flags cuda --n_workers {min(8, cores)}', 210, 'parallel', None),
    ('bench_eager', f'nae_bench {dev} --json {bench_sizes} --noref --eager --out {OUT}/bench_eager.json', 60, 'timed', None),
    ('chain_steps', f'nae_bench {dev} --json {chain_sizes} --out {OUT}/chain_steps.json', 90, 'timed', None),
    ('concurrency', f'rm -f {OUT}/concurrency.json {OUT}/concurrency_mps.json && '
                    f'OMP_NUM_THREADS=1 nae_bench {dev} --json {conc_sizes} --mps off --out {OUT}/concurrency.json && '
                    f'OMP_NUM_THREADS=1 nae_bench {dev} --json {conc_mps} --mps auto --out {OUT}/concurrency_mps.json', 200, 'timed', None),
    ('table1_gpu', f'rm -rf {OUT}/table1 && mkdir -p {OUT}/table1 && cp nbs/51_mnist_holdout.ipynb {OUT}/table1/ && '
                   f'NAE_SCALE={"smoke" if cpu else "gpu"} NAE_OUT={(OUT/"table1"/"runs").resolve()} python3 scripts/run_nb.py '
                   f'{OUT}/table1/51_mnist_holdout.ipynb --timings {OUT}/table1/cells.json', 520, 'timed',
     None if has_mnist else 'NAE_DATA holds no MNIST: the GPU-slot Table 1 needs the real data'),
    ('table4_gpu', f'rm -rf {OUT}/table4 && mkdir -p {OUT}/table4 && cp nbs/52_mnist_ood.ipynb {OUT}/table4/ && '
                   f'NAE_SCALE={"smoke" if cpu else "gpu"} NAE_OUT={(OUT/"table4"/"runs").resolve()} python3 scripts/run_nb.py '
                   f'{OUT}/table4/52_mnist_ood.ipynb --timings {OUT}/table4/cells.json', 520, 'timed',
     None if has_mnist else 'NAE_DATA holds no MNIST: the GPU-slot Table 4 needs the real data'),
] + [(f'smoke:{Path(nb).stem}', f'rm -rf {OUT}/smoke/{Path(nb).stem} && mkdir -p {OUT}/smoke/{Path(nb).stem} && '
                                f'cp {nb} {OUT}/smoke/{Path(nb).stem}/ && NAE_SCALE=smoke OMP_NUM_THREADS={par_threads} '
                                f'python3 scripts/run_nb.py {OUT}/smoke/{Path(nb).stem}/{Path(nb).name} '
                                f'--timings {OUT}/smoke/{Path(nb).stem}/cells.json', 210, 'parallel', None) for nb in nbs]
for x in reversed(a.also):                            # extra checks run right after `versions`
    name, _, cmd = x.partition('=')
    plan.insert(1, (name, cmd, 120, 'timed', None))
PERF = ('bench_eager', 'chain_steps', 'concurrency')
ONLY_NAMED = ('table1_gpu', 'table4_gpu')
if not a.perf and not a.only: plan = [it for it in plan if it[0] not in PERF]
if not a.only: plan = [it for it in plan if it[0] not in ONLY_NAMED]
# the timed items first, in this order; then the side-by-side ones
plan = sorted(plan, key=lambda it: it[3] != 'timed')
if a.only:
    keep = [s.strip() for s in a.only.split(',') if s.strip()]
    want = lambda n: n in keep or (n.startswith('smoke:') and 'smoke:*' in keep) or any(n == x.partition('=')[0] for x in a.also)
    unknown = [k for k in keep if k != 'smoke:*' and k not in {n for n, *_ in plan}]
    if unknown: print(f'gpu_check: unknown item(s) {unknown}; the items are: {", ".join(n for n, *_ in plan)}'); sys.exit(2)
    plan = [it for it in plan if want(it[0])]

if a.dry_run:
    report['items'] = [dict(name=n, command=c, timeout_s=t, phase=ph, status='planned', skip_reason=s) for n, c, t, ph, s in plan]
    save()
    for i in report['items']: print(f"{i['name']:28s} {i['phase']:8s} <= {i['timeout_s']:3d} s  {i['command'][:110]}")
    print(f"dry run: {len(plan)} items planned, timeouts add up to at most "
          f"{sum(t for _, _, t, ph, _ in plan if ph == 'timed') + max([t for _, _, t, ph, _ in plan if ph == 'parallel'] or [0])} s "
          f"(budget {BUDGET} s); plan written to {OUT}/gpu_check.json")
    sys.exit(0)

if not cpu and not report.get('cuda'):
    report['error'] = 'no CUDA device: nothing was run (use --dry-run to see the plan, or --device cpu to rehearse it)'
    save(); print(f"gpu_check: {report['error']}; wrote {OUT}/gpu_check.json"); sys.exit(2)

def run(item):
    name, cmd, timeout, phase, skip = item
    rec = dict(name=name, command=cmd, timeout_s=timeout, phase=phase, shared=phase == 'parallel')
    if skip: rec.update(status='skip', seconds=0.0, message=skip); print(f'[skip] {name}: {skip}', flush=True); return rec
    t = time.time()
    timeout = rec['timeout_s'] = max(1, min(timeout, int(BUDGET - (t - T0))))   # never past the whole check's budget
    proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try: out, _ = proc.communicate(timeout=timeout); status = 'pass' if proc.returncode == 0 else 'fail'
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); out, _ = proc.communicate(); status = 'timeout'
    rec.update(status=status, rc=proc.returncode, seconds=round(time.time() - t, 1), tail=(out or '')[-3000:])
    (OUT/'logs').mkdir(exist_ok=True)                 # the whole output, for the items whose tail is not enough
    (OUT/'logs'/f"{name.replace(':', '_')}.log").write_text(out or '')
    print(f'[{status}] {name}: {rec["seconds"]} s', flush=True)
    return rec

def attach(rec):
    "Add the figures of a finished item (bench JSON, the epoch's time from the run's log) to its record."
    try:
        if rec['name'] in ('chain_steps', 'bench_eager') and rec['status'] == 'pass':
            rec['results'] = json.loads((OUT/f"{rec['name']}.json").read_text())['results']
        if rec['name'] == 'concurrency':              # without MPS, then with it; each file as far as it got
            rec['results'] = [r for f in ('concurrency.json', 'concurrency_mps.json') if (OUT/f).exists()
                              for r in json.loads((OUT/f).read_text())['results']]
        if rec['name'] in ('bench', 'epoch_bench') and rec['status'] == 'pass':
            d = json.loads((OUT/f"{rec['name']}.json").read_text())
            rec['results'] = [{k: r.get(k) for k in ('setting', 'device', 'batch', 'iter_ms', 'z_chain_ms', 'x_chain_ms', 'update_ms',
                               'ref_iter_ms', 'speedup', 'ae_step_ms', 'peak_mem_mb', 'gflops_chains', 'matmul_gflops',
                               'iters', 'iters_s', 'captured', 'update_captured', 'update_eager_why', 'bf16')} | {'maths_ok': (r.get('check') or {}).get('ok')} for r in d['results']]
        if rec['name'] == 'epoch_bench' and rec.get('results') and rec['results'][0].get('iters_s'):
            r = rec['results'][0]; rec['iter_ms'] = 1e3 * r['iters_s'] / r['iters']; rec['epoch_s_projected'] = 422 * rec['iter_ms'] / 1e3
        if rec['name'].startswith('smoke:'):
            f = OUT/'smoke'/rec['name'][6:]/'cells.json'
            if f.exists():
                d = json.loads(f.read_text()); rec['cells_s'] = d['total_s']
                rec['slowest_cells'] = sorted(d['cells'], key=lambda c: -c['seconds'])[:3]
        if rec['name'] in ('table1_gpu', 'table4_gpu') and rec['status'] == 'pass':   # the table the notebook's runs produced
            rec['metrics'] = {p.parent.name: json.loads(p.read_text()) for p in sorted((OUT/rec['name'][:6]/'runs').rglob('metrics.json'))}
        if rec['name'] == 'mnist_epoch' and rec['status'] == 'pass':
            recs = [json.loads(l) for l in (OUT/'mnist_epoch'/'log.jsonl').read_text().splitlines() if l.strip()]
            nae = [r for r in recs if r.get('phase') == 'nae' and 'time' in r]
            if nae: rec['nae_phase_s'], rec['nae_steps'] = nae[-1]['time'], nae[-1]['step']
    except Exception as e: rec['attach_error'] = repr(e)
    return rec

for it in plan:                                       # timed items: one at a time, nothing else running
    if it[3] == 'timed': report['items'].append(attach(run(it))); save()
par = [it for it in plan if it[3] == 'parallel']
if par:
    with ThreadPoolExecutor(max_workers=len(par)) as ex:   # all at once: the GPU machine has the cores and the memory
        for rec in ex.map(run, par): report['items'].append(attach(rec)); save()
save()
print(f"gpu_check: {report['passed']} passed, {report['failed']} failed, {report['skipped']} skipped in {report['total_s']} s "
      f"(budget {BUDGET} s); wrote {OUT}/gpu_check.json")
sys.exit(0 if report['failed'] == 0 else 1)
PY
