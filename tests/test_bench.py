"The benchmark's CI configuration: `nae_bench --tiny --json` runs every code path in seconds and prints one JSON object."
import json
from conftest import run_cli

RESULT_KEYS = {'ae_step_ms', 'iter_ms', 'z_chain_ms', 'x_chain_ms', 'update_ms', 'ref_iter_ms', 'speedup',
               'langevin_img_steps_per_s', 'score_img_per_s', 'peak_mem_mb', 'flops_iter', 'flops_chains',
               'gflops_iter', 'gflops_chains', 'matmul_gflops', 'chains_frac_matmul', 'check', 'batch', 'threads'}

def test_nae_bench_tiny_json(tmp_path):
    out = tmp_path/'bench.json'
    r = run_cli('nae_bench', '--tiny', '--json', '--out', out, timeout=300)
    d = json.loads(r.stdout)                      # stdout is exactly one JSON object
    assert d == json.loads(out.read_text())       # and --out holds the same
    assert {'hardware', 'torch', 'date', 'threads', 'results', 'targets'} <= set(d)
    assert [x['setting'] for x in d['results']] == ['tiny', 'tiny2d']
    for res in d['results']:
        assert RESULT_KEYS <= set(res), RESULT_KEYS - set(res)
        c = res['check']                          # the library's path computes the reference's maths
        assert c['ok'], c
        assert c['flops_ratio'] >= 0.99           # and does not skip work
        assert res['flops_iter'] > res['flops_chains'] > 0

def test_nae_bench_table_and_errors():
    r = run_cli('nae_bench', '--settings', 'tiny2d', '--repeats', '1', '--noref')
    assert 'NAE iteration (ms)' in r.stdout and 'tiny2d' in r.stdout
    bad = run_cli('nae_bench', '--settings', 'mnist', check=False)
    assert bad.returncode == 2 and 'Unknown benchmark setting' in bad.stderr and 'How to fix' in bad.stderr
