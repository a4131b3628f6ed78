"""NVIDIA MPS for runs at once (`mps_daemon`, `train_each`, `concurrent_throughput`), on a machine without a GPU: a fake
`nvidia-cuda-mps-control` on PATH writes down how it was called, and `torch.cuda.is_available` is patched where needed."""
import os, sys, subprocess, tempfile
from pathlib import Path
import pytest, torch
from conftest import run_cli
import nae_nbdev.cli as cli
from nae_nbdev.cli import mps_daemon, train_each
from nae_nbdev.core import NAEError

EXE = 'nvidia-cuda-mps-control'

def _fake(folder:Path, log:Path, start:str='ok') -> Path:
    "A stand-in for NVIDIA's program: one line per call (argv | stdin | pipe folder | log folder) in `log`."
    folder.mkdir(parents=True, exist_ok=True)
    up = {'ok': ': > "$CUDA_MPS_PIPE_DIRECTORY/control"',      # the real daemon opens its control pipe there
          'fails': 'echo "cannot start: compute mode" >&2; exit 1',
          'silent': ':'}[start]                               # exits 0 but never opens the pipe
    exe = folder/EXE
    exe.write_text(f"""#!/bin/sh
if [ "$1" = -d ]; then
  printf '%s|%s|%s|%s\\n' "$*" "" "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY" >> '{log}'
  {up}
  exit 0
fi
in=$(cat)
printf '%s|%s|%s|%s\\n' "$*" "$in" "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY" >> '{log}'
[ "$in" = quit ] && rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
exit 0
""")
    exe.chmod(0o755)
    return exe

def calls(log:Path) -> list:
    "[(argv, stdin, CUDA_MPS_PIPE_DIRECTORY, CUDA_MPS_LOG_DIRECTORY)] of the fake's calls, in order."
    return [tuple(l.split('|')) for l in log.read_text().splitlines()] if log.exists() else []

@pytest.fixture
def mps(tmp_path, monkeypatch):
    "The fake on PATH, CUDA 'available', and tempfile's folder inside tmp_path (to see that nothing is left there)."
    log, tmp = tmp_path/'mps.log', tmp_path/'tmp'
    tmp.mkdir()
    _fake(tmp_path/'bin', log)
    monkeypatch.setenv('PATH', f"{tmp_path/'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv('CUDA_MPS_PIPE_DIRECTORY', raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp))
    return dict(log=log, tmp=tmp, bin=tmp_path/'bin')

def test_the_daemon_starts_with_d_in_a_private_folder_and_quits(mps):
    m = mps_daemon('auto', jobs=2)
    with m as env:
        pipe, logdir = env['CUDA_MPS_PIPE_DIRECTORY'], env['CUDA_MPS_LOG_DIRECTORY']
        d = Path(pipe).parent
        assert d.parent == mps['tmp'] and d.name.startswith('nae-mps-') and Path(logdir).parent == d
        assert Path(pipe).is_dir() and Path(logdir).is_dir()
        assert calls(mps['log']) == [('-d', '', pipe, logdir)]           # started once, under the private folders
        assert m.used and m.started and 'used' in m.summary()
    assert calls(mps['log']) == [('-d', '', pipe, logdir), ('', 'quit', pipe, logdir)]   # `echo quit | ...`, same folders
    assert not d.exists() and list(mps['tmp'].iterdir()) == []           # the folder is removed
    assert m.used                                                        # still readable after the end, for the callers

def test_quit_is_sent_when_the_block_fails(mps):
    with pytest.raises(KeyboardInterrupt):
        with mps_daemon('on', jobs=2) as env: raise KeyboardInterrupt
    assert [c[:2] for c in calls(mps['log'])] == [('-d', ''), ('', 'quit')]
    assert list(mps['tmp'].iterdir()) == []

class _Proc:
    "A finished `nae_train` child."
    def __init__(self, rc): self.returncode, self.terminated = rc, False
    def poll(self): return self.returncode
    def terminate(self): self.terminated = True
    def wait(self): return self.returncode

def _record_children(monkeypatch, rc=0, interrupt_at=None):
    "Replace the `nae_train` children of train_each by `_Proc`s; every other Popen (the fake daemon) runs for real."
    real, seen = subprocess.Popen, []
    def popen(cmd, *a, **kw):
        if not (cmd[0] == sys.executable and 'nae_train' in cmd[-1]): return real(cmd, *a, **kw)
        if interrupt_at is not None and len(seen) == interrupt_at: raise KeyboardInterrupt
        seen.append(dict(cmd=cmd, env=kw['env'])); return _Proc(rc)
    monkeypatch.setattr(subprocess, 'Popen', popen)
    return seen

def test_train_each_gives_the_children_the_daemon_and_stops_it_after_them(mps, monkeypatch, tmp_path, capsys):
    seen = _record_children(monkeypatch)
    r = train_each('1,2,3', {}, jobs=2, out=tmp_path/'each', quiet=False)
    (start, quit_) = calls(mps['log'])
    assert len(seen) == 3 and all(s['env']['CUDA_MPS_PIPE_DIRECTORY'] == start[2] for s in seen)
    assert all(s['env']['CUDA_MPS_LOG_DIRECTORY'] == start[3] for s in seen)
    assert start[0] == '-d' and quit_[:2] == ('', 'quit') and quit_[2] == start[2]
    assert r['mps'] is True and 'NVIDIA MPS: used' in capsys.readouterr().out
    assert list(mps['tmp'].iterdir()) == []

def test_quit_is_sent_also_when_a_run_fails(mps, monkeypatch, tmp_path):
    _record_children(monkeypatch, rc=1)
    with pytest.raises(NAEError, match='failed'): train_each('1,2', {}, jobs=2, out=tmp_path/'each')
    assert [c[:2] for c in calls(mps['log'])] == [('-d', ''), ('', 'quit')]
    assert list(mps['tmp'].iterdir()) == []

def test_quit_is_sent_also_after_ctrl_c(mps, monkeypatch, tmp_path):
    seen = _record_children(monkeypatch, interrupt_at=1)
    with pytest.raises(KeyboardInterrupt): train_each('1,2', {}, jobs=2, out=tmp_path/'each')
    assert len(seen) == 1 and [c[:2] for c in calls(mps['log'])] == [('-d', ''), ('', 'quit')]
    assert list(mps['tmp'].iterdir()) == []

def test_one_run_at_a_time_or_cpu_runs_start_nothing(mps, monkeypatch, tmp_path, capsys):
    seen = _record_children(monkeypatch)
    r = train_each('1,2', {}, jobs=1, out=tmp_path/'a', quiet=False)
    assert 'NVIDIA MPS: not used (--mps auto: one run at a time)' in capsys.readouterr().out and r['mps'] is False
    r = train_each('1,2', {'device': 'cpu'}, jobs=2, out=tmp_path/'b')
    assert r['mps'] is False and calls(mps['log']) == []
    assert all('CUDA_MPS_PIPE_DIRECTORY' not in s['env'] for s in seen)

def test_auto_without_cuda_starts_nothing(mps, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    m = mps_daemon('auto', jobs=10)
    with m as env: assert 'CUDA_MPS_PIPE_DIRECTORY' not in env
    assert not m.used and 'no CUDA device' in m.reason and calls(mps['log']) == []
    with pytest.raises(NAEError, match='no CUDA device'):                  # `on` says why it cannot
        with mps_daemon('on', jobs=10): pass
    assert calls(mps['log']) == [] and list(mps['tmp'].iterdir()) == []

def test_on_without_the_program_is_a_clear_error(mps, monkeypatch, tmp_path):
    (tmp_path/'empty').mkdir()
    monkeypatch.setenv('PATH', str(tmp_path/'empty'))
    with pytest.raises(NAEError) as e:
        with mps_daemon('on', jobs=2): pass
    assert EXE in str(e.value) and 'not on PATH' in str(e.value) and 'How to fix' in str(e.value)
    m = mps_daemon('auto', jobs=2)                                         # auto: goes on without
    with m as env: assert 'CUDA_MPS_PIPE_DIRECTORY' not in env
    assert not m.used and 'not on PATH' in m.reason and list(mps['tmp'].iterdir()) == []

def test_a_daemon_someone_else_runs_is_used_and_nothing_is_started(mps, monkeypatch, tmp_path):
    theirs = tmp_path/'theirs'; theirs.mkdir()
    monkeypatch.setenv('CUDA_MPS_PIPE_DIRECTORY', str(theirs))
    for mode in ('auto', 'on'):
        m = mps_daemon(mode, jobs=2)
        with m as env: assert env['CUDA_MPS_PIPE_DIRECTORY'] == str(theirs)
        assert m.used and not m.started and 'CUDA_MPS_PIPE_DIRECTORY' in m.reason
    with mps_daemon('off', jobs=2) as env: assert 'CUDA_MPS_PIPE_DIRECTORY' not in env   # off: not even theirs
    assert calls(mps['log']) == [] and theirs.is_dir()                   # nothing started, their folder kept

@pytest.mark.parametrize('start', ['fails', 'silent'])
def test_a_daemon_that_does_not_start(mps, monkeypatch, start):
    _fake(mps['bin'], mps['log'], start)
    monkeypatch.setattr(mps_daemon, 'start_s', 0.5)
    with pytest.raises(NAEError) as e:
        with mps_daemon('on', jobs=2): pass
    assert 'did not start' in str(e.value) and ('compute mode' in str(e.value) if start == 'fails' else 'no control pipe' in str(e.value))
    m = mps_daemon('auto', jobs=2)
    with m as env: assert 'CUDA_MPS_PIPE_DIRECTORY' not in env
    assert not m.used and 'did not start' in m.reason
    assert list(mps['tmp'].iterdir()) == []                              # no folder left behind

def test_unknown_modes_are_refused(mps):
    for bad in ('maybe', '', 'yes'):
        with pytest.raises(NAEError, match='not one of auto, on, off'): mps_daemon(bad)
    with pytest.raises(NAEError, match='--each_holdout'): cli.nae_train(mps='on')
    assert calls(mps['log']) == []

def test_concurrent_throughput_records_mps(mps, monkeypatch):
    from nae_nbdev.bench import concurrent_throughput
    class on_cpu(mps_daemon):                         # the workers train on the CPU; the daemon logic runs as on a GPU
        def __init__(self, *a, **kw): super().__init__(*a, **{**kw, 'cuda': True})
    monkeypatch.setattr(cli, 'mps_daemon', on_cpu)
    r = concurrent_throughput('tiny', procs=2, seconds=0.3, device='cpu', setup_s=4, mps='auto')
    assert r['mps'] is True and r['iters_per_s'] > 0 and 'private daemon' in r['mps_note']
    assert [c[:2] for c in calls(mps['log'])] == [('-d', ''), ('', 'quit')]
    r = concurrent_throughput('tiny', procs=2, seconds=0.3, device='cpu', setup_s=4, mps='off')
    assert r['mps'] is False and len(calls(mps['log'])) == 2 and list(mps['tmp'].iterdir()) == []

def test_command_line_errors(tmp_path):
    r = run_cli('nae_train', '--each_holdout', '1,2', '--jobs', '2', '--mps', 'maybe', '--out', tmp_path/'e', check=False)
    assert r.returncode == 2 and 'not one of auto, on, off' in r.stderr and 'Traceback' not in r.stderr
    r = run_cli('nae_train', '--each_holdout', '1,2', '--jobs', '2', '--mps', 'on', '--out', tmp_path/'e', check=False)
    assert r.returncode == 2 and '--mps on' in r.stderr and 'Traceback' not in r.stderr   # no GPU here (or no MPS program)
    assert not (tmp_path/'e'/'h1').exists()                              # no run started
    r = run_cli('nae_bench', '--settings', 'tiny', '--concurrent', '2', '--mps', 'sometimes', check=False)
    assert r.returncode == 2 and 'not one of auto, on, off' in r.stderr
