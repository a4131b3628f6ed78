"""Fault and bad-input suite (issue 6): every bad input ends in a clear error that names the problem
and the fix, never a silent wrong result or a raw stack trace, and nothing the user had is lost."""
import os, io, json, errno, pickle, shutil, zipfile, warnings
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run_cli, TINY
from nae_nbdev.core import NAEError
from nae_nbdev.detector import NAEDetector
from nae_nbdev.checkpoint import save_checkpoint, load_checkpoint, FORMAT_VERSION
import nae_nbdev.checkpoint as ckmod

TRIED = []  # (case, outcome) — summarised at the end of the run (see conftest.pytest_terminal_summary)

def refused(case, f, *needles):
    "`f()` must raise NAEError naming the problem and the fix, with each of `needles` in its message."
    with pytest.raises(NAEError) as ei: f()
    msg = str(ei.value)
    assert 'How to fix' in msg, msg
    for n in needles: assert n in msg, (n, msg)
    TRIED.append((case, 'refused'))
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
    "Policy (documented in core.as_images): float outside [0,1] is an error; uint8 is divided by 255 with a warning."
    refused('values outside [0, 1]', lambda: tiny_det().fit(np.random.rand(40, 6) * 10), 'outside [0, 1]', 'minmax')
    det = tiny_det(scale='minmax').fit(np.random.rand(40, 6) * 10)   # the documented way out
    assert det.decision_function(np.random.rand(3, 6) * 10).shape == (3,); TRIED.append(('out of range with scale=minmax', 'scaled'))
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        det = tiny_det().fit((np.random.rand(40, 1, 8, 8) * 255).astype(np.uint8))
    assert any('uint8' in str(w.message) for w in ws); TRIED.append(('uint8 images', 'scaled with a warning'))

def test_empty_data_and_huge_batch():
    refused('empty data set', lambda: tiny_det().fit(np.zeros((0, 6), 'float32')), 'empty')
    det = NAEDetector(ae_iters=3, nae_iters=1, x_steps=2, z_steps=2, dz=4, batch_size=4096, random_state=0).fit(np.random.rand(10, 6))
    assert det.decision_scores_.shape == (10,); TRIED.append(('batch size larger than the data set', 'one smaller batch'))

# ---------------------------------------------------------------- bad checkpoints
@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path/'run'
    run_cli('nae_train', '--out', out, *TINY)
    return out

def _eval_refused(case, run, *needles):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = run_cli('nae_eval', run, check=False)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert n in r.stderr, (n, r.stderr)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert before == after, "a refused load must not change the run's files"
    TRIED.append((case, 'refused'))

def test_truncated_corrupted_and_foreign_checkpoints(finished_run):
    m = finished_run/'model.pt'; good = m.read_bytes()
    m.write_bytes(good[:len(good)//2]); _eval_refused('truncated checkpoint', finished_run)
    m.write_bytes(b''); _eval_refused('empty checkpoint', finished_run)
    bad = bytearray(good); i = good.rfind(b'data/0') + 400; bad[i] ^= 0xFF; m.write_bytes(bytes(bad))
    _eval_refused('flipped byte in the weights', finished_run)
    m.write_bytes(good)
    cfg = json.loads((finished_run/'config.json').read_text())
    (finished_run/'config.json').write_text(json.dumps({**cfg, 'dz': 16}))
    _eval_refused('checkpoint from another architecture', finished_run, 'shape')
    (finished_run/'config.json').write_text(json.dumps(cfg))
    run_cli('nae_eval', finished_run)  # and the run still works: nothing was lost

def test_newer_format_version(tmp_path):
    p = tmp_path/'ck.pt'
    save_checkpoint(p, dict(model={'w': torch.zeros(2)}))
    sd = torch.load(p, weights_only=True); sd['format_version'] = FORMAT_VERSION + 1
    torch.save(sd, p)
    refused('checkpoint from a newer format version', lambda: load_checkpoint(p), 'newer')

def test_malicious_pickle_is_refused_not_executed(finished_run, tmp_path):
    marker = tmp_path/'pwned'
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    torch.save({'model': Evil()}, finished_run/'model.pt')
    _eval_refused('malicious pickle payload', finished_run)
    assert not marker.exists(), "the payload ran!"

def test_resume_from_a_truncated_last_checkpoint(tmp_path):
    out = tmp_path/'run'
    run_cli('nae_train', '--out', out, *TINY)
    last = out/'nae'/'last.pt'; last.write_bytes(last.read_bytes()[:100])
    (out/'model.pt').unlink()
    r = run_cli('nae_train', '--out', out, *TINY, '--resume', check=False)
    assert r.returncode == 2 and 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    TRIED.append(('resume from a truncated checkpoint', 'refused'))

# ---------------------------------------------------------------- run directories and disks
def test_unwritable_run_directory(tmp_path):
    f = tmp_path/'a_file'; f.write_text('precious')
    r = run_cli('nae_train', '--out', f/'run', *TINY, check=False)
    assert r.returncode == 2 and 'How to fix' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert f.read_text() == 'precious'
    TRIED.append(('run directory under a file (unwritable)', 'refused'))

def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path/'last.pt'
    save_checkpoint(p, dict(model={'w': torch.ones(3)}))
    before = p.read_bytes()
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(ckmod.os, 'fsync', full)
    refused('disk full while saving', lambda: save_checkpoint(p, dict(model={'w': torch.zeros(3)})), 'No space left', 'unchanged')
    monkeypatch.undo()
    assert p.read_bytes() == before and load_checkpoint(p)['model']['w'].sum() == 3
    assert [q.name for q in tmp_path.iterdir()] == ['last.pt'], "no temporary file may be left behind"
