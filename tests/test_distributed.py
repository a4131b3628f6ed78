"""Distributed training with torchrun on the CPU (gloo, 2 processes): lockstep weights and rollbacks, one log,
the 2 x B == 1 x 2B equivalence, and kill-and-resume of `nae_train` on both ranks."""
import os, sys, json, time, signal, subprocess, shutil
from pathlib import Path
import pytest, torch
from conftest import ROOT, run_cli, cli_env, TINY, reached
from fault_log import module_log

LOG, _write_fault_log = module_log('tests/test_distributed.py')

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']
WORKER = str(ROOT/'tests'/'ddp_worker.py')
ARGS = [*TINY, '--nae_iters', '150', '--seed', '7']   # as test_resume: a longer NAE phase to kill into

def torchrun(*args, check=True, timeout=600):
    r = subprocess.run([*TORCHRUN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=cli_env(), cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"torchrun {' '.join(map(str, args))} failed (rc={r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r

def worker(out, nproc, **kw):
    args = [WORKER, '--out', out, *[f'--{k}={v}' for k, v in kw.items()]]
    if nproc == 1: r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    else: r = torchrun(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    return [torch.load(out/f'rank{i}.pt', weights_only=True) for i in range(nproc)]

def test_weights_identical_on_both_ranks(tmp_path):
    r0, r1 = worker(tmp_path, 2, iters=8, sampler='omi', opt='adam', bs=16)
    assert r0['diff'] == 0 and r1['diff'] == 0
    for k in r0['w']: assert torch.equal(r0['w'][k], r1['w'][k]), k
    assert any(not torch.equal(r0['w'][k], r0['w0'][k]) for k in r0['w']), "training did not change the weights"
    b0, b1 = r0['sampler']['buffer'], r1['sampler']['buffer']
    assert not torch.equal(b0['data'][:b0['size']], b1['data'][:b1['size']]), "the ranks must run their own chains"
    assert not set(r0['first'].tolist()) & set(r1['first'].tolist()), "the ranks' first batches must be disjoint shards"
    assert r0['log'] and not r1['log'], "only rank 0 logs"

def test_two_ranks_batch_b_equal_one_process_batch_2b(tmp_path):
    two = worker(tmp_path/'two', 2, iters=1, sampler='cd0', opt='sgd', bs=16)
    one, = worker(tmp_path/'one', 1, iters=1, sampler='cd0', opt='sgd', bs=32)
    assert sorted(torch.cat([two[0]['first'], two[1]['first']]).tolist()) == sorted(one['first'].tolist())
    for k in one['w']:
        d1, d2 = one['w'][k] - one['w0'][k], two[0]['w'][k] - two[0]['w0'][k]
        torch.testing.assert_close(d2, d1, rtol=0, atol=1e-3 * d1.abs().max().item() + 1e-12, msg=f"first update of {k}")
    assert any(d.abs().max() > 1e-4 for d in (one['w'][k] - one['w0'][k] for k in one['w'])), "the update is too small to compare"
    (l2,), (l1,) = two[0]['log'], one['log']
    for key in ('loss', 'e_pos', 'e_neg'): assert l2[key] == pytest.approx(l1[key], rel=1e-5), key

def _steps(out):
    log = [json.loads(l) for l in (Path(out)/'log.jsonl').read_text().splitlines()]
    return [(r['phase'], r['step']) for r in log if 'loss' in r]

def _descendants(pid):
    "The process ids below `pid` (from /proc), children first."
    kids = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: ppid = int((d/'stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(kids.get(pid, []))
    while todo: c = todo.pop(0); out.append(c); todo += kids.get(c, [])
    return out

def _kill_job(pid):
    "SIGKILL a torchrun job: its own process group, and its workers, which torchrun starts in sessions of their own."
    workers = _descendants(pid)
    os.killpg(pid, signal.SIGKILL)
    for w in workers:
        try: os.killpg(w, signal.SIGKILL)
        except (ProcessLookupError, PermissionError): pass
        try: os.kill(w, signal.SIGKILL)
        except ProcessLookupError: pass

def _wait_unlocked(run_dir, timeout=60):
    "Wait until no process holds the run directory's lock (a SIGKILLed process releases it when the kernel closes its files)."
    import fcntl
    t0 = time.time()
    with open(Path(run_dir)/'.lock', 'rb') as f:
        while True:
            try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); fcntl.flock(f, fcntl.LOCK_UN); return
            except OSError:
                assert time.time() - t0 < timeout, f"{run_dir} is still locked {timeout}s after its run was killed"
                time.sleep(0.05)

def test_nae_train_under_torchrun_logs_once_and_resumes(tmp_path):
    ref = tmp_path/'ref'
    r = torchrun('--no-python', 'nae_train', '--out', ref, *ARGS)
    assert r.stdout.count('train / ') == 1 and r.stdout.count('test AUROC') == 1, r.stdout   # rank 0 prints, once
    steps = _steps(ref)
    assert len(steps) == len(set(steps)) and ('nae', 150) in steps, steps   # each logged step once
    ck = torch.load(ref/'nae'/'last.pt', weights_only=True)
    assert ck['world_size'] == 2 and len(ck['ranks']) == 2 and 'sampler' not in ck
    assert not torch.equal(ck['ranks'][0]['rng']['torch'], ck['ranks'][1]['rng']['torch']), "ranks are seeded apart"
    # kill the whole torchrun process group once the NAE phase has checkpointed, then resume
    out = tmp_path/'run'
    p = subprocess.Popen([*TORCHRUN, '--no-python', 'nae_train', '--out', str(out), *map(str, ARGS)], env=cli_env(), cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while not reached(out, 'nae', 20) and p.poll() is None and time.time() - t0 < 300: time.sleep(0.01)
    assert p.poll() is None, "the run finished before it could be killed: make it longer"
    _kill_job(p.pid); p.wait()
    _wait_unlocked(out)   # the kernel releases a killed worker's lock when it closes its files
    assert not (out/'model.pt').exists()
    one = run_cli('nae_train', '--out', out, *ARGS, '--resume', check=False)   # one process cannot continue a 2-process run
    assert one.returncode == 2 and 'written by 2 process(es); this run has 1' in one.stderr, one.stderr
    torchrun('--no-python', 'nae_train', '--out', out, *ARGS, '--resume')
    got, want = (torch.load(d/'model.pt', weights_only=True)['model'] for d in (out, ref))
    diff = {k: (got[k] - want[k]).abs().max().item() for k in want if not torch.equal(got[k], want[k])}
    assert not diff, f"the resumed 2-process run differs from the uninterrupted one: {diff}"
    steps = _steps(out)
    assert len(steps) == len(set(steps)), "a resumed run must not log the same step twice"
    LOG.add('kill -9', 'SIGKILL to a 2-process torchrun job in the NAE phase', 'resumed on 2 ranks; weights bit-identical to an uninterrupted run')
    LOG.add('changed config on resume', 'resume of a 2-process run with 1 process', 'refused with a clear error')

def test_divergence_on_one_rank_rolls_back_every_rank(tmp_path):
    r0, r1 = worker(tmp_path, 2, iters=6, sampler='omi', opt='adam', bs=16, nan_at=3)   # a NaN E(x-) on rank 1 only
    assert r0['events'] == r1['events'] and len(r0['events']) == 1, (r0['events'], r1['events'])
    assert [r.get('event') for r in r0['log']].count('rollback') == 1
    assert r0['step'] == r1['step'] == 6 and r0['diff'] == 0 and r1['diff'] == 0
    for k in r0['w']: assert torch.equal(r0['w'][k], r1['w'][k]), k
    LOG.add('divergence', 'NaN energy on one rank of two', 'both ranks rolled back once and stayed identical')

def test_torchrun_only_rank0_locks_and_a_locked_directory_is_refused(tmp_path):
    "Under torchrun rank 0 alone takes the run directory's lock (the run above trains, so rank 1 never contends for it);"
    "a directory locked by another process stops the whole torchrun job at once, with the clear error and no file written."
    out = tmp_path/'run'
    holder = subprocess.Popen([sys.executable, '-c', f"from nae_nbdev.checkpoint import RunLock; import time; RunLock({str(out)!r}).acquire(); "
                               "print('locked', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert holder.stdout.readline().strip() == 'locked'
        t = time.time()
        r = torchrun('--no-python', 'nae_train', '--out', out, *ARGS, check=False, timeout=300)
        took = time.time() - t
        assert r.returncode != 0 and f'The run directory {out} is in use: process {holder.pid}' in r.stderr, (r.returncode, r.stderr[-3000:])
        assert sorted(p.name for p in out.iterdir()) == ['.lock'], list(out.iterdir())
        print(f"torchrun job refused after {took:.1f}s")
        LOG.add('two owners', 'a torchrun job (2 ranks) on a directory locked by another process', f'refused after {took:.1f}s; no file written')
    finally: holder.kill(); holder.wait()
    r = torchrun('--no-python', 'nae_train', '--out', out, *ARGS, '--nae_iters', '20')   # the lock is free again: trains, 2 ranks
    assert (out/'model.pt').exists() and (out/'.lock').read_text() == ''
