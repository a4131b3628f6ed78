"Kill a training run with SIGKILL at some moment and resume it: the final weights equal an uninterrupted run's."
import os, json, time, signal, subprocess, shutil, shlex
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
    LOG.add('kill -9', f'SIGKILL in the {phase} phase at step {step}', 'resumed; weights bit-identical to an uninterrupted run')

def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path/'run'
    assert _kill_when(out, 'ae', 0)
    r = run_cli('nae_train', '--out', out, *ARGS, '--resume', '--dz', '16', check=False)
    assert r.returncode == 2 and 'differ from the saved run' in r.stderr, r.stderr
    LOG.add('changed config on resume', '--resume with --dz changed', 'refused with a clear error')

# ---------------------------------------------------------------- Ctrl-C and SIGTERM (issue 18)
import re, sys
from fault_log import module_log
LOG, _write_fault_log = module_log('tests/test_resume.py')

def _start(out, *extra):
    "nae_train in a child whose SIGINT is not ignored (a background job of a non-interactive shell inherits SIG_IGN)."
    return subprocess.Popen([shutil.which('nae_train'), '--out', str(out), *ARGS, *extra], env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

def _wait(out, phase, step, p):
    t0 = time.time()
    while not _reached(out, phase, step) and p.poll() is None and time.time() - t0 < 300: time.sleep(0.01)
    assert p.poll() is None, "the run finished before the signal: make it longer"

@pytest.mark.parametrize('sig,phase,step', [(signal.SIGINT, 'ae', 20), (signal.SIGINT, 'nae', 60), (signal.SIGTERM, 'nae', 30)])
def test_signal_stops_cleanly_and_resume_is_identical(tmp_path, reference, sig, phase, step):
    "One signal: the step finishes, a checkpoint is written, one line says where and how to resume, exit 128+signum, no traceback."
    out = tmp_path/'run'
    p = _start(out); _wait(out, phase, step, p)
    p.send_signal(sig); _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, (p.returncode, err[-2000:])
    assert 'Traceback' not in err, err
    line, = [l for l in err.splitlines() if l.startswith('nae_train: stopped by')]
    m = re.match(rf"nae_train: stopped by {signal.Signals(sig).name} after iteration (\d+) of phase '{phase}'; checkpoint (\S+); resume with: (.+)$", line)
    assert m, line
    at, ck, cmd = int(m[1]), Path(m[2]), m[3]
    assert at >= step and ck == out/phase/'last.pt' and torch.load(ck, weights_only=True)['counters']['step'] == at
    assert not (out/'model.pt').exists()
    argv = shlex.split(cmd)
    assert argv[0] == 'nae_train' and argv[-1] == '--resume' and str(out) in argv, argv
    r = subprocess.run([shutil.which('nae_train'), *argv[1:]], capture_output=True, text=True, env=cli_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = _weights(out)
    diff = {k: (got[k] - reference[k]).abs().max().item() for k in got if not torch.equal(got[k], reference[k])}
    assert not diff, f"resumed weights differ from the uninterrupted run: {diff}"
    print(line)
    LOG.add('SIGINT/SIGTERM', f"{signal.Signals(sig).name} in the {phase} phase (after iteration {at})",
            f"one line, exit {128 + sig}, no traceback; the printed resume command gave weights bit-identical to an uninterrupted run")

def test_second_ctrl_c_stops_at_once_without_writing(tmp_path):
    "Two SIGINTs: the second arrives during the (slow) step and stops the process at once; no file is written or changed."
    out = tmp_path/'run'
    p = _start(out, '--x_steps', '40000', '--log_every', '1000', '--val_every', '1000', '--ckpt_every', '1000')   # NAE steps of seconds
    _wait(out, 'nae', 0, p); time.sleep(1.5)   # past the phase's first checkpoint and log rewrite, inside its first steps
    files = lambda: {q: (q.read_bytes(), q.stat().st_mtime_ns) for q in sorted(out.rglob('*')) if q.is_file() and q.name != '.lock'}
    before = files()
    t = time.time(); p.send_signal(signal.SIGINT); time.sleep(0.2); p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60); took = time.time() - t
    assert p.returncode == 130 and 'Traceback' not in err, (p.returncode, err[-2000:])
    assert 'stopped at once by a second SIGINT' in err and 'without saving' in err, err
    assert files() == before, "the second Ctrl-C must not write anything"
    assert (out/'.lock').read_text() == '', "the run directory's lock is released"
    print(f"exited {took:.2f}s after the first SIGINT")
    LOG.add('SIGINT/SIGTERM', 'a second SIGINT during the step', f'stopped at once ({took:.1f}s), exit 130, no file written or changed')
