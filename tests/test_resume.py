"Kill a training run with SIGKILL at some moment and resume it: the final weights equal an uninterrupted run's."
import os, json, time, signal, subprocess, shutil
from pathlib import Path
import pytest, torch
from conftest import run_cli, cli_env, TINY, reached as _reached

ARGS = [*TINY, '--nae_iters', '150', '--seed', '7']   # later flags win: a longer NAE phase to kill into

def _weights(run):
    return torch.load(Path(run)/'model.pt', weights_only=True)['model']

def _kill_when(out:Path, phase:str, step:int):
    "Start nae_train and SIGKILL it as soon as it has logged `step` of `phase`; True if it was killed before finishing."
    p = subprocess.Popen([shutil.which('nae_train'), '--out', str(out), *ARGS], env=cli_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not _reached(out, phase, step) and p.poll() is None and time.time() - t0 < 300: time.sleep(0.01)
    killed = p.poll() is None
    if killed: p.send_signal(signal.SIGKILL)
    p.wait()
    return killed and not (out/'model.pt').exists()

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp('ref')/'run'
    run_cli('nae_train', '--out', out, *ARGS)
    return _weights(out)

@pytest.mark.parametrize('phase,step', [('ae', 0), ('ae', 20), ('nae', 0), ('nae', 30), ('nae', 100)])
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference, phase, step):
    out = tmp_path/'run'
    assert _kill_when(out, phase, step), "the run finished before it could be killed: make it longer"
    r = run_cli('nae_train', '--out', out, *ARGS, '--resume')
    got = _weights(out)
    assert got.keys() == reference.keys()
    diff = {k: (got[k] - reference[k]).abs().max().item() for k in got if not torch.equal(got[k], reference[k])}
    assert not diff, f"resumed weights differ from the uninterrupted run: {diff}"
    log = [json.loads(l) for l in (out/'log.jsonl').read_text().splitlines()]
    steps = [(r['phase'], r['step']) for r in log if 'loss' in r]
    assert len(steps) == len(set(steps)), "a resumed run must not log the same step twice"
    print(f"killed in the {phase} phase at step {step}; resumed; {len(got)} tensors bit-identical to the uninterrupted run")

def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path/'run'
    assert _kill_when(out, 'ae', 0)
    r = run_cli('nae_train', '--out', out, *ARGS, '--resume', '--dz', '16', check=False)
    assert r.returncode == 2 and 'differ from the saved run' in r.stderr, r.stderr
