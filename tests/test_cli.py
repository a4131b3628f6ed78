"End-to-end tests of the console scripts, each in its own process, on tiny budgets."
import json
from pathlib import Path
import pytest, torch
from conftest import run_cli, TINY

@pytest.mark.parametrize('cmd', ['nae_train', 'nae_eval', 'nae_sample'])
def test_help_is_documented(cmd):
    r = run_cli(cmd, '--help')
    assert 'usage' in r.stdout.lower()
    # every argument carries its docment
    assert r.stdout.count('(default') >= 1 or 'RUN_DIR' in r.stdout.upper()

def test_train_eval_sample(tmp_path):
    out = tmp_path/'run'
    r = run_cli('nae_train', '--out', out, *TINY)
    assert 'test AUROC' in r.stdout and 'holdout_9' in r.stdout
    m = json.loads((out/'metrics.json').read_text())
    assert set(m) >= {'ae', 'nae', 'time_s'}
    for phase in ('ae', 'nae'):
        for s, v in m[phase].items(): assert 0 <= v['auroc'] <= 1, (phase, s, v)
    assert {'config.json', 'log.jsonl', 'model.pt'} <= {p.name for p in out.iterdir()}
    e = run_cli('nae_eval', out, '--json', '--ood', 'noise,constant_gray')
    rep = json.loads(e.stdout[e.stdout.index('{'):])
    assert set(rep) == {'holdout_9', 'noise', 'constant_gray'}
    assert abs(rep['holdout_9']['auroc'] - m['nae']['holdout_9']['auroc']) < 1e-6
    assert set(rep['noise']) == {'auroc', 'aupr_in', 'aupr_out', 'fpr95'}
    t = run_cli('nae_eval', out)
    assert 'holdout_9' in t.stdout
    s = run_cli('nae_sample', out, '--n', '16', '--out', tmp_path/'g.png', '--rows', tmp_path/'rows.png', '--z_steps_mult', '1')
    assert (tmp_path/'g.png').stat().st_size > 100 and (tmp_path/'rows.png').stat().st_size > 100, s.stdout

def test_flag_spellings(tmp_path):
    "fastcore 1 writes --x_steps, fastcore 2 --x-steps: both work."
    r = run_cli('nae_train', '--out', tmp_path/'r', '--ae-iters', '10', '--nae-iters', '2', '--x-steps', '2', '--z_steps', '2',
                '--dz', '4', '--batch-size', '32', '--quiet')
    cfg = json.loads((tmp_path/'r'/'config.json').read_text())
    assert (cfg['ae_iters'], cfg['nae_iters'], cfg['x_steps'], cfg['batch_size']) == (10, 2, 2, 32)

@pytest.mark.parametrize('args,needle', [
    (['--dz', 'big'], "not a number"),
    (['--preset', 'mnist_hold'], "Choose one of"),
    (['--holdout', 'nine'], "not a class number"),
    (['--replay', 'maybe'], "not a boolean"),
    (['--model', 'gan'], "Unknown model kind"),
    (['--net', 'resnet50'], "Unknown network"),
    (['--resume'], "--resume needs the run directory"),
    (['--device', 'cuda'], "CUDA is not available"),
])
def test_bad_arguments_get_clear_errors(tmp_path, args, needle):
    r = run_cli('nae_train', '--out', tmp_path/'r', *TINY, *args, check=False) if '--resume' not in args else \
        run_cli('nae_train', *args, check=False)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert needle in r.stderr, r.stderr
    assert 'How to fix' in r.stderr and 'Traceback' not in r.stderr

def test_refuses_to_overwrite_a_finished_run(tmp_path):
    out = tmp_path/'run'
    run_cli('nae_train', '--out', out, *TINY)
    before = (out/'model.pt').read_bytes()
    r = run_cli('nae_train', '--out', out, *TINY, check=False)
    assert r.returncode == 2 and 'already holds a run' in r.stderr and '--overwrite' in r.stderr
    assert (out/'model.pt').read_bytes() == before, "a refused run must not touch the saved one"
    run_cli('nae_train', '--out', out, *TINY, '--overwrite', '--seed', '3')
    assert json.loads((out/'config.json').read_text())['seed'] == 3

def test_eval_on_a_missing_run(tmp_path):
    r = run_cli('nae_eval', tmp_path/'nothing', check=False)
    assert r.returncode == 2 and 'not a finished nae_train run' in r.stderr
