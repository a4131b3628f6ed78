"""Fault and bad-input suite (issue 6): every bad input ends in a clear error that names the problem
and the fix, never a silent wrong result or a raw stack trace, and nothing the user had is lost."""
import os, io, json, errno, pickle, shutil, zipfile, warnings
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run_cli, TINY
from fault_log import module_log
from nae_nbdev.core import NAEError
from nae_nbdev.detector import NAEDetector
from nae_nbdev.checkpoint import save_checkpoint, load_checkpoint, FORMAT_VERSION
import nae_nbdev.checkpoint as ckmod

TRIED = []  # (case, outcome) — summarised at the end of the run (see conftest.pytest_terminal_summary)
LOG, _write_fault_log = module_log('tests/test_faults.py')   # and recorded in nae_nbdev/records/fault_suite.json

def tried(case, outcome, fault='bad input'):
    TRIED.append((case, outcome)); LOG.add(fault, case, outcome)

def refused(case, f, *needles, fault='bad input'):
    "`f()` must raise NAEError naming the problem and the fix, with each of `needles` in its message."
    with pytest.raises(NAEError) as ei: f()
    msg = str(ei.value)
    assert 'How to fix' in msg, msg
    for n in needles: assert n in msg, (n, msg)
    tried(case, 'refused with a clear error', fault)
    return msg

def tiny_det(**kw): return NAEDetector(ae_iters=5, nae_iters=2, x_steps=2, z_steps=2, dz=4, batch_size=16, random_state=0, **kw)

# ---------------------------------------------------------------- bad data
def test_nan_and_inf_inputs():
    X = np.random.rand(40, 6).astype('float32'); X[3, 2] = np.nan
    refused('NaN in training data', lambda: tiny_det().fit(X), 'NaN')
    X[3, 2] = np.inf
    refused('Inf in training data', lambda: tiny_det().fit(X), 'NaN/Inf')
    det = tiny_det().fit(np.random.rand(40, 6).astype('float32'))
    Y = np.random.rand(5, 6).astype('float32'); Y[0, 0] = np.nan
    refused('NaN at scoring time', lambda: det.decision_function(Y), 'NaN')

def test_wrong_channels_and_spatial_size():
    det = tiny_det().fit(np.random.rand(40, 1, 8, 8).astype('float32'))
    refused('wrong channel count', lambda: det.decision_function(np.random.rand(4, 3, 8, 8).astype('float32')), '(1, 8, 8)')
    refused('wrong spatial size', lambda: det.decision_function(np.random.rand(4, 1, 9, 9).astype('float32')), '(1, 8, 8)')
    refused('wrong feature count', lambda: tiny_det().fit(np.random.rand(40, 6)).decision_function(np.random.rand(4, 7)), '6')

def test_out_of_range_and_uint8():
    "Policy (documented in the detector): with scale=None, floats outside [0,1] are an error; the default scale='auto' fits a"
    "min-max scaling inside and scores rows outside the training range; uint8 is divided by 255 with a warning."
    refused('values outside [0, 1] with scale=None', lambda: tiny_det(scale=None).fit(np.random.rand(40, 6) * 10), 'outside [0, 1]', 'minmax')
    det = tiny_det().fit(np.random.rand(40, 6) * 10)   # the default: scaled inside
    assert det.decision_function(np.random.rand(3, 6) * 20).shape == (3,); tried('out of range at fit and at scoring, default scale', 'scaled inside; scored')
    det = tiny_det(scale='minmax').fit(np.random.rand(40, 6) * 10)
    assert det.decision_function(np.random.rand(3, 6) * 10).shape == (3,); tried('out of range with scale=minmax', 'scaled')
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        det = tiny_det().fit((np.random.rand(40, 1, 8, 8) * 255).astype(np.uint8))
    assert any('uint8' in str(w.message) for w in ws); tried('uint8 images', 'scaled with a warning')

def test_empty_data_and_huge_batch():
    refused('empty data set', lambda: tiny_det().fit(np.zeros((0, 6), 'float32')), 'empty')
    det = NAEDetector(ae_iters=3, nae_iters=1, x_steps=2, z_steps=2, dz=4, batch_size=4096, random_state=0).fit(np.random.rand(10, 6))
    assert det.decision_scores_.shape == (10,); tried('batch size larger than the data set', 'one smaller batch')

# ---------------------------------------------------------------- bad checkpoints
@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path/'run'
    run_cli('nae_train', '--out', out, *TINY)
    return out

def _eval_refused(case, run, *needles, fault='corrupted checkpoint'):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = run_cli('nae_eval', run, check=False)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert n in r.stderr, (n, r.stderr)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert before == after, "a refused load must not change the run's files"
    tried(case, 'refused with a clear error; no file changed', fault)

def test_truncated_corrupted_and_foreign_checkpoints(finished_run):
    m = finished_run/'model.pt'; good = m.read_bytes()
    m.write_bytes(good[:len(good)//2]); _eval_refused('truncated checkpoint', finished_run)
    m.write_bytes(b''); _eval_refused('empty checkpoint', finished_run)
    bad = bytearray(good); i = good.rfind(b'data/0') + 400; bad[i] ^= 0xFF; m.write_bytes(bytes(bad))
    _eval_refused('flipped byte in the weights', finished_run)
    m.write_bytes(good)
    cfg = json.loads((finished_run/'config.json').read_text())
    (finished_run/'config.json').write_text(json.dumps({**cfg, 'dz': 16}))
    _eval_refused('checkpoint from another architecture', finished_run, 'shape', fault='wrong checkpoint')
    (finished_run/'config.json').write_text(json.dumps(cfg))
    run_cli('nae_eval', finished_run)  # and the run still works: nothing was lost

def test_newer_format_version(tmp_path):
    p = tmp_path/'ck.pt'
    save_checkpoint(p, dict(model={'w': torch.zeros(2)}))
    sd = torch.load(p, weights_only=True); sd['format_version'] = FORMAT_VERSION + 1
    torch.save(sd, p)
    refused('checkpoint from a newer format version', lambda: load_checkpoint(p), 'newer', fault='wrong checkpoint')

def test_malicious_pickle_is_refused_not_executed(finished_run, tmp_path):
    marker = tmp_path/'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    torch.save({'model': Evil()}, finished_run/'model.pt')
    _eval_refused('malicious pickle payload', finished_run, fault='malicious pickle')
    assert not marker.exists(), "the payload ran!"

def test_resume_from_a_truncated_last_checkpoint(tmp_path):
    out = tmp_path/'run'
    run_cli('nae_train', '--out', out, *TINY)
    last = out/'nae'/'last.pt'; last.write_bytes(last.read_bytes()[:100])
    (out/'model.pt').unlink()
    r = run_cli('nae_train', '--out', out, *TINY, '--resume', check=False)
    assert r.returncode == 2 and 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    tried('resume from a truncated checkpoint', 'refused with a clear error', 'corrupted checkpoint')

# ---------------------------------------------------------------- run directories and disks
def test_unwritable_run_directory(tmp_path):
    f = tmp_path/'a_file'; f.write_text('precious')
    r = run_cli('nae_train', '--out', f/'run', *TINY, check=False)
    assert r.returncode == 2 and 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert f.read_text() == 'precious'
    tried('run directory under a file (unwritable)', 'refused with a clear error; nothing lost', 'unwritable directory')

def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path/'last.pt'
    save_checkpoint(p, dict(model={'w': torch.ones(3)}))
    before = p.read_bytes()
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(ckmod.os, 'fsync', full)
    refused('disk full while saving', lambda: save_checkpoint(p, dict(model={'w': torch.zeros(3)})), 'No space left', 'unchanged', fault='disk full')
    monkeypatch.undo()
    assert p.read_bytes() == before and load_checkpoint(p)['model']['w'].sum() == 3
    assert [q.name for q in tmp_path.iterdir()] == ['last.pt'], "no temporary file may be left behind"

# ---------------------------------------------------------------- errors inside the engine (issue 18)
import signal, functools
from unittest import mock
from nae_nbdev.models import make_model
from nae_nbdev.data import load_digits, hold_out, constant_gray
from nae_nbdev.learner import (Callback, Rollback, TrainingDiverged, TrainingInterrupted, LogCB, ValidationCB, EarlyStoppingCB,
                               ClipGradCB, ProgressCB)
from nae_nbdev.resilience import make_learner, CheckpointCB, GuardCB
from nae_nbdev.training import fit_nae, NegativesCB
from nae_nbdev.distributed import DDPCB
from nae_nbdev.run import EvalCB
import nae_nbdev.learner as lmod

EVENTS = ('before_fit', 'before_epoch', 'before_batch', 'after_loss', 'after_backward', 'after_step', 'after_validate',
          'after_batch', 'before_save', 'after_rollback', 'after_interrupt', 'after_epoch', 'after_fit', 'cleanup_fit')
CALLBACKS = (CheckpointCB, LogCB, ValidationCB, EarlyStoppingCB, ClipGradCB, ProgressCB, GuardCB, NegativesCB, DDPCB, EvalCB)

def _digits():
    x = hold_out(*load_digits('train'), 9)[0][:256]
    xv = hold_out(*load_digits('val'), 9)[0]
    return x, xv, constant_gray(len(xv), (1, 8, 8))

def _nae(seed=0):
    torch.manual_seed(seed)
    return make_model('nae', (1, 8, 8), net='fc', dz=8, mult=0.25, sampler_kw=dict(z_steps=2, x_steps=3, buffer_size=128))

class Injected(Exception): pass
class _RollbackOnce(Callback):
    def __init__(self): self.done = False
    def after_step(self, learn):
        if learn.step == 7 and not self.done: self.done = True; raise Rollback('test')
class _SignalAt(Callback):
    def __init__(self, step, signum=signal.SIGINT, times=1): self.at, self.signum, self.times = step, signum, times
    def after_step(self, learn):
        if learn.step == self.at:
            for _ in range(self.times): os.kill(os.getpid(), self.signum)

def _every_event_run(d, signal_at=None):
    "An NAE phase of 12 iterations that goes through every event: validations, checkpoints, a rollback, a signal, evaluation."
    if signal_at and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:   # a background job starts with SIGINT ignored, and
        signal.signal(signal.SIGINT, signal.default_int_handler)            # the learner keeps it so: a user's terminal does not
    x, xv, xg = _digits()
    m = _nae()
    with mock.patch.object(lmod, 'tqdm', functools.partial(lmod.tqdm, disable=True)):   # a real ProgressCB, without its output
        return make_learner(m, x, valid=(xv, xg), lr=1e-4, n_iters=12, batch_size=64, val_every=3, early_stop=100, clip_grad=1.,
                            ckpt_every=2, log_every=2, run_dir=d, device='cpu', name='nae', guard=dict(every=4),
                            cbs=[NegativesCB(every=4), DDPCB(), EvalCB(dict(test_in=xv, test_out={'gray': xg})), _RollbackOnce()]
                                + ([_SignalAt(signal_at)] if signal_at else [])).fit()

@pytest.mark.parametrize('cb', CALLBACKS, ids=lambda c: c.__name__)
def test_an_injected_callback_failure_surfaces_as_itself(tmp_path, cb):
    "Each event method of each built-in callback raises in turn: the error out of `fit` is that one, never a cleanup's."
    assert _every_event_run(tmp_path/'ok').step == 12
    evs = [ev for ev in EVENTS if callable(getattr(cb, ev, None))]
    assert evs, cb
    for i, ev in enumerate(evs):
        def boom(self, learn, _w=f"{cb.__name__}.{ev}"): raise Injected(_w)
        with mock.patch.object(cb, ev, boom):
            with pytest.raises(Injected) as ei: _every_event_run(tmp_path/f'r{i}', signal_at=10 if ev == 'after_interrupt' else None)
        assert str(ei.value) == f"{cb.__name__}.{ev}" and not getattr(ei.value, '__notes__', None)
        tried(f"{cb.__name__}.{ev} raises", 'the injected error surfaced as itself', 'callback failure')

def test_a_failing_cleanup_never_masks_the_error(tmp_path):
    "The reported case: CheckpointCB.before_fit refuses a directory that holds a checkpoint before ProgressCB made its bar;"
    "the clear error comes out, not an AttributeError from the bar's cleanup. A cleanup that fails too becomes a note."
    x, xv, xg = _digits()
    make_learner(_nae(), x, n_iters=2, run_dir=tmp_path, name='nae', device='cpu', batch_size=64, progress=False).fit()
    with pytest.raises(NAEError, match='already holds a checkpoint'):
        make_learner(_nae(), x, n_iters=2, run_dir=tmp_path, name='nae', device='cpu', batch_size=64, progress=True).fit()
    tried('a directory that holds a checkpoint; the progress bar never made', 'the clear error surfaced, no AttributeError', 'callback failure')
    def setup_fails(self, learn): raise Injected('setup failed')
    def cleanup_fails(self, learn): raise RuntimeError('cleanup broke too')
    with mock.patch.object(CheckpointCB, 'before_fit', setup_fails), mock.patch.object(ProgressCB, 'cleanup_fit', cleanup_fails):
        with pytest.raises(Injected) as ei: make_learner(_nae(), x, n_iters=2, name='nae', device='cpu', batch_size=64).fit()
    assert str(ei.value) == 'setup failed' and ei.value.__notes__ == ['ProgressCB.cleanup_fit also failed: RuntimeError: cleanup broke too']
    tried('setup and cleanup both fail', 'the first error surfaced, the cleanup failure attached as a note', 'callback failure')

def _saturate(model):
    last = [l for l in model.decoder.modules() if isinstance(l, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    with torch.no_grad(): last.weight.zero_(); last.bias.fill_(-30.)

class _SaturateAt(Callback):
    def __init__(self, step): self.at, self.done = step, False
    def before_batch(self, learn):
        if learn.step == self.at and not self.done: self.done = True; _saturate(learn.model)

def _ae_run(run_dir, cbs=(), dead=False, **kw):
    x, xv, xg = _digits()
    m = _nae()
    if dead: _saturate(m)
    return fit_nae(m, x, valid=(xv, xg), ae_iters=600, nae_iters=0, lr_ae=1e-3, batch_size=32, run_dir=run_dir, device='cpu',
                   progress=False, val_every=100, ckpt_every=100, guard=dict(every=50), final='last', ae_cbs=list(cbs), **kw)

def test_a_collapsed_network_is_rolled_back_or_stopped(tmp_path):
    "Saturate the decoder's sigmoid: with a good checkpoint the guard rolls back; without one it stops and says why in metrics.json."
    ok = _ae_run(tmp_path/'ok')
    assert ok.guard == [] and ok.ae.step == 600   # no false alarm on the healthy run
    run = _ae_run(tmp_path/'mid', cbs=[_SaturateAt(210)])
    assert [(e['kind'], e['action'], e['to_step']) for e in run.guard] == [('dead network', 'rollback', 200)], run.guard
    assert run.ae.step == 600
    g = next(c for c in run.ae.cbs if isinstance(c, GuardCB))
    assert g.checks[-1]['spread'] > 0.1 and not g.checks[-1]['dead'], g.checks[-1]
    tried('decoder saturated mid-run (sigmoid output constant)', 'detected; rolled back to the last good checkpoint', 'collapsed network')
    with pytest.raises(TrainingDiverged, match='no good checkpoint') as ei: _ae_run(tmp_path/'dead', dead=True)
    assert 'lower learning rate' in str(ei.value) and '--seed' in str(ei.value), str(ei.value)
    m = json.loads((tmp_path/'dead'/'metrics.json').read_text())
    assert [(e['kind'], e['action']) for e in m['guard']] == [('dead network', 'stopped')] and 'died' in m['stopped'], m
    tried('decoder saturated from the start', 'stopped with a clear error; verdict in metrics.json', 'collapsed network')

def test_divergence_rolls_back_then_stops(tmp_path):
    x, xv, xg = _digits()
    with pytest.raises(TrainingDiverged, match='after 3 rollback') as ei:
        fit_nae(_nae(), x, ae_iters=0, nae_iters=40, lr_nae=1e30, batch_size=32, run_dir=tmp_path, device='cpu', progress=False, ckpt_every=5)
    assert 'How to fix' in str(ei.value)
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert [e['action'] for e in m['guard']] == ['rollback'] * 3 + ['stopped'] and {e['kind'] for e in m['guard']} == {'divergence'}, m
    tried('learning rate 1e30 (parameters overflow)', '3 rollbacks with a lower learning rate, then a clear error; verdict in metrics.json', 'divergence')
