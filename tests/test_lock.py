"""One owner per run directory (issue 18): two `nae_train` processes aimed at one `--out` at once; a second process
refused while the lock is held (nothing written, not even with --overwrite); a lock left by a killed process taken over."""
import os, sys, json, time, signal, subprocess, shutil
from pathlib import Path
import pytest, torch
from conftest import run_cli, cli_env, TINY, ROOT
from fault_log import module_log
from nae_nbdev.checkpoint import RunLock

LOG, _write_fault_log = module_log('tests/test_lock.py')
ARGS = [*TINY, '--nae_iters', '60', '--seed', '3']

def _snapshot(d:Path):
    return {str(p.relative_to(d)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.rglob('*')) if p.is_file()}

def _weights(d): return torch.load(Path(d)/'model.pt', weights_only=True)['model']

def test_two_processes_at_once_on_one_out(tmp_path):
    "Start two nae_train on the same --out at the same moment: one trains to the end, the other stops within seconds."
    args = [*ARGS, '--nae_iters', '300']   # long enough that the first is still training when the second starts
    ref = tmp_path/'ref'; run_cli('nae_train', '--out', ref, *args)
    out = tmp_path/'run'
    exe = shutil.which('nae_train')
    t0 = time.time()
    ps = [subprocess.Popen([exe, '--out', str(out), *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for _ in range(2)]
    ends = [None, None]
    while None in ends and time.time() - t0 < 600:
        for i, p in enumerate(ps):
            if ends[i] is None and p.poll() is not None: ends[i] = time.time() - t0
        time.sleep(0.05)
    res = [(p.returncode, t, *p.communicate(timeout=60)) for p, t in zip(ps, ends)]
    codes = sorted(r[0] for r in res)
    assert codes == [0, 2], [(r[0], r[3][-1500:]) for r in res]
    (_, t_ok, _, _), (_, t_refused, _, err) = sorted(res, key=lambda r: r[0])
    assert f'The run directory {out} is in use' in err and 'How to fix' in err and 'Traceback' not in err, err
    assert any(f'process {p.pid} on host' in err for p in ps), err
    # the finished run is exactly the run of one process alone: nothing of the other one got in
    got, want = _weights(out), _weights(ref)
    assert all(torch.equal(got[k], want[k]) for k in want)
    steps = [(r['phase'], r['step']) for r in map(json.loads, (out/'log.jsonl').read_text().splitlines()) if 'loss' in r]
    assert len(steps) == len(set(steps))
    assert t_refused < t_ok / 2, (t_refused, t_ok)
    print(f"refused after {t_refused:.1f}s (the other run took {t_ok:.1f}s); weights identical to a run alone")
    LOG.add('two owners', 'two nae_train started at once on one --out',
            f'one trained (weights identical to a run alone), the other was refused after {t_refused:.1f}s')

def test_refused_process_writes_nothing(tmp_path):
    "While another process holds the lock, nae_train (even with --overwrite) stops before it touches a file."
    out = tmp_path/'run'; run_cli('nae_train', '--out', out, *ARGS)
    holder = subprocess.Popen([sys.executable, '-c', f"from nae_nbdev.checkpoint import RunLock; import time; RunLock({str(out)!r}).acquire(); "
                               "print('locked', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout.readline().strip() == 'locked'
        before = _snapshot(out)
        for extra in ([], ['--overwrite'], ['--resume']):
            t = time.time()
            r = run_cli('nae_train', '--out', out, *ARGS, *extra, check=False)
            assert r.returncode == 2 and f'process {holder.pid}' in r.stderr and 'Traceback' not in r.stderr, r.stderr
            assert _snapshot(out) == before, f"nae_train {' '.join(extra)} changed files of a locked run directory"
            LOG.add('two owners', f"nae_train {' '.join(extra) or '(no flag)'} on a locked directory",
                    f'refused after {time.time() - t:.1f}s; no file written or changed')
    finally: holder.kill(); holder.wait()

def test_stale_lock_is_taken_over(tmp_path):
    "A holder killed with SIGKILL leaves its record in .lock; the next run says it takes the lock over, and trains."
    out = tmp_path/'run'
    holder = subprocess.Popen([sys.executable, '-c', f"from nae_nbdev.checkpoint import RunLock; import time; RunLock({str(out)!r}).acquire(); "
                               "print('locked', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True, env=cli_env())
    assert holder.stdout.readline().strip() == 'locked'
    holder.send_signal(signal.SIGKILL); holder.wait()
    assert json.loads((out/'.lock').read_text())['pid'] == holder.pid
    r = run_cli('nae_train', '--out', out, *ARGS)
    assert f'taking over the lock of process {holder.pid}' in r.stderr, r.stderr
    assert (out/'model.pt').exists() and (out/'.lock').read_text() == ''
    LOG.add('two owners', 'a lock left by a process killed with SIGKILL', 'taken over with a message; the run trained')
