"`scripts/gpu_check.sh` on a machine without a GPU: its plan, its clean refusal, and a CPU rehearsal of its machinery."
import json, os, subprocess
from pathlib import Path
from conftest import ROOT, cli_env
from mirror import make_tiny_mnist

SCRIPT = ROOT/'scripts'/'gpu_check.sh'

def _run(out, *args, **env):
    return subprocess.run(['bash', str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          env=cli_env(OUT=str(out), **env))

def test_dry_run_plans_every_item_within_the_budget(tmp_path):
    r = _run(tmp_path, '--dry-run')
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads((tmp_path/'gpu_check.json').read_text())
    names = [i['name'] for i in d['items']]
    nbs = sorted(p.stem for p in (ROOT/'nbs').glob('5*.ipynb')) + ['60_demo']
    assert names[:5] == ['versions', 'bench', 'epoch_bench', 'mnist_epoch', 'fast_tier']
    assert sorted(n[6:] for n in names if n.startswith('smoke:')) == sorted(nbs)
    assert all(i['status'] == 'planned' for i in d['items'])
    it = {i['name']: i for i in d['items']}
    assert 'nbdev_test --flags cuda' in it['fast_tier']['command'] and '--device cuda' in it['bench']['command']
    assert '--iters 100' in it['epoch_bench']['command'] and all('NAE_SCALE=smoke' in it[f'smoke:{n}']['command'] for n in nbs)
    assert '--nae_iters 422' in it['mnist_epoch']['command']          # one real MNIST epoch at batch 128
    assert 'table1_gpu' not in it and 'table4_gpu' not in it and 'chain_steps' not in it          # the long items only when asked for (--perf, --only)
    assert all('--timings' in it[f'smoke:{n}']['command'] for n in nbs) and 'OMP_NUM_THREADS=1' in it['fast_tier']['command']
    worst = sum(i['timeout_s'] for i in d['items'] if i['phase'] == 'timed') + max(i['timeout_s'] for i in d['items'] if i['phase'] == 'parallel')
    assert worst <= d['budget_s'] <= 540                              # 9 minutes on one GPU

def test_without_cuda_it_says_so_and_runs_nothing(tmp_path):
    r = _run(tmp_path, CUDA_VISIBLE_DEVICES='')
    assert r.returncode == 2 and 'no CUDA device' in r.stdout, r.stdout + r.stderr
    d = json.loads((tmp_path/'gpu_check.json').read_text())
    assert d['cuda'] is False and d['items'] == [] and 'Traceback' not in r.stderr

def test_cpu_rehearsal_records_each_item_and_goes_on_after_a_failure(tmp_path):
    make_tiny_mnist(tmp_path/'data')
    r = _run(tmp_path/'out', '--device', 'cpu', '--only', 'versions,epoch_bench,mnist_epoch', '--also', 'boom=exit 3',
             NAE_DATA=str(tmp_path/'data'))
    assert r.returncode == 1, r.stdout + r.stderr                 # one item failed
    d = json.loads((tmp_path/'out'/'gpu_check.json').read_text())
    st = {i['name']: i for i in d['items']}
    assert [i['name'] for i in d['items']] == ['versions', 'boom', 'epoch_bench', 'mnist_epoch']
    assert st['boom']['status'] == 'fail' and st['boom']['rc'] == 3
    assert st['versions']['status'] == st['epoch_bench']['status'] == st['mnist_epoch']['status'] == 'pass', d
    assert st['epoch_bench']['results'][0]['iter_ms'] > 0 and st['epoch_bench']['results'][0]['iters'] == 20
    assert st['mnist_epoch']['nae_steps'] == 5 and st['mnist_epoch']['nae_phase_s'] >= 0
    assert (d['passed'], d['failed'], d['skipped']) == (3, 1, 0) and all(i['seconds'] >= 0 for i in d['items'])
    text = (tmp_path/'out'/'gpu_check.json').read_text()         # a record to keep: no folder of this machine in it
    assert str(tmp_path) not in text and str(ROOT) not in text and '$OUT/' in text

def test_the_real_data_epoch_is_skipped_without_nae_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'NAE_DATA'}
    r = subprocess.run(['bash', str(SCRIPT), '--device', 'cpu', '--only', 'mnist_epoch'], capture_output=True, text=True,
                       timeout=120, env=dict(env, OUT=str(tmp_path), CUDA_VISIBLE_DEVICES=''))
    assert r.returncode == 0, r.stdout + r.stderr
    (it,) = json.loads((tmp_path/'gpu_check.json').read_text())['items']
    assert it['status'] == 'skip' and 'NAE_DATA' in it['message']
