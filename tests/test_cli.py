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

@pytest.mark.parametrize('cmd', ['nae_train', 'nae_eval'])
def test_download_flag_is_offered(cmd):
    r = run_cli(cmd, '--help')
    assert '--download' in r.stdout, r.stdout

def test_missing_data_names_the_files_and_the_flag(tmp_path):
    "Nothing is downloaded without --download: a missing MNIST is a clear error (exit 2) that says what to do."
    r = run_cli('nae_train', '--preset', 'mnist_holdout_cpu', '--data_root', tmp_path/'empty', '--out', tmp_path/'r', '--quiet',
                check=False)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'MNIST/raw/train-images-idx3-ubyte' in r.stderr and '--download' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    assert not (tmp_path/'empty').exists() or not any((tmp_path/'empty').rglob('*')), "nothing may be written without --download"

def test_download_flag_fetches_then_trains_and_evaluates(mirror, tmp_path):
    "--download through the real code path (in-process, so that torchvision's addresses can point at the local mirror)."
    from nae_nbdev.cli import nae_train, eval_run
    mirror.patch()
    data, out = tmp_path/'data', tmp_path/'run'
    nae_train(preset='mnist_holdout_cpu', data_root=str(data), download=True, out=str(out), quiet=True,
              ae_iters='6', nae_iters='2', x_steps='2', z_steps='2', batch_size='16', ae_batch_size='16', val_every='100',
              ckpt_every='3', neg_every='none', test_ood='noise')
    assert (data/'MNIST'/'raw'/'t10k-images-idx3-ubyte').exists()
    assert {f'/mnist/{f}.gz' for f in ('train-images-idx3-ubyte', 't10k-labels-idx1-ubyte')} <= set(mirror.requests)
    m = json.loads((out/'metrics.json').read_text())
    assert 'holdout_9' in m['nae'] and 0 <= m['nae']['holdout_9']['auroc'] <= 1
    n = len(mirror.requests)
    rep = eval_run(out, ood=['noise'], download=True)          # the files are there now: nothing is fetched again
    assert set(rep) == {'holdout_9', 'noise'} and len(mirror.requests) == n

def test_each_holdout_trains_one_run_per_class(tmp_path):
    "Table 1 in one command: one run directory per held-out class, two at once, each resumable on its own."
    out = tmp_path/'each'
    r = run_cli('nae_train', '--each_holdout', '1,2', '--jobs', '2', *TINY, '--out', out, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    for k in (1, 2):
        m = json.loads((out/f'h{k}'/'metrics.json').read_text())
        assert f'holdout_{k}' in m['nae'] and json.loads((out/f'h{k}'/'config.json').read_text())['holdout'] == k
    assert 'held-out 1:' in r.stdout and 'held-out 2:' in r.stdout
    r2 = run_cli('nae_train', '--each_holdout', '1,2', *TINY, '--out', out, check=False)   # finished runs are not overwritten
    assert r2.returncode != 0 and 'failed' in r2.stderr

def test_gauss8_command_line_agrees_with_the_notebook_path(tmp_path):
    """`nae_train --preset gauss8` reports what the eight-Gaussians notebook reports for the same settings: the weights with
    the lowest validation NLL, their TV and KL on the sampler's box, and the last weights' beside them."""
    from nae_nbdev.presets import preset
    from nae_nbdev.run import train_run
    args = dict(dz=3, mult=0.0625, nae_iters=12, val_every=4, x_steps=3, z_steps=2, t_lr_mult=10.)
    run_cli('nae_train', '--preset', 'gauss8', '--out', tmp_path/'r', '--quiet',
            *[a for k, v in args.items() for a in (f'--{k}', str(v))])
    cli = json.loads((tmp_path/'r'/'metrics.json').read_text())
    torch.set_num_threads(1)
    nb = train_run(preset('gauss8', **args), out=None, progress=False, verbose=False)['metrics']
    for k in ('tv', 'kl', 'T', 'selected_step', 'box', 'last'): assert cli[k] == nb[k], (k, cli[k], nb[k])
    assert cli['box'] == [-5., 5.] and [p['step'] for p in cli['curve']] == [4, 8, 12]
    assert cli['selected_step'] == min(cli['curve'], key=lambda p: p['val_nll'])['step']

def test_runs_at_once_resume_skip_and_stop_on_the_clock(tmp_path):
    """`run_at_once` (the 'gpu' scale of the Table 1 notebook): two presets in two processes at once, each in its own
    run directory; a second call skips the finished runs; `nae_time_s` ends a phase on the clock after one step."""
    import time
    from nae_nbdev.presets import preset
    from nae_nbdev.cli import run_at_once
    base = dict(ae_iters=30, nae_iters=200, x_steps=2, z_steps=2, val_every=10, log_every=1, mult=0.25, dz=8, device='cpu')
    runs = {tmp_path/f'nae-h{k}': preset('digits_holdout', holdout=k, nae_time_s=0., **base) for k in (1, 2)}
    runs[tmp_path/'nae-h2']['data_root'] = tmp_path/'data'   # a Path in the settings travels as text
    done = run_at_once(runs, mps='off')
    assert sorted(done.values()) == [0, 0]
    for k in (1, 2):
        d = tmp_path/f'nae-h{k}'
        assert f'holdout_{k}' in json.loads((d/'metrics.json').read_text())['nae']
        log = [json.loads(l) for l in (d/'log.jsonl').read_text().splitlines()]
        assert max(r['step'] for r in log if r.get('phase') == 'ae') == 30              # no limit: every AE step
        assert max(r['step'] for r in log if r.get('phase') == 'nae') == 1              # the clock ends the NAE phase
        assert (tmp_path/f'nae-h{k}.out').exists()
    t = time.time(); run_at_once(runs, mps='off'); assert time.time() - t < 60           # finished: read back, not retrained
    assert run_at_once({}, mps='off') == {}
    bad = {tmp_path/'bad': preset('digits_holdout', dataset='no_such_set', **base)}
    with pytest.raises(Exception, match='runs failed'): run_at_once(bad, mps='off')
