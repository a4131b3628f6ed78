__version__ = "0.1.0"

# OpenMP's wait policy is read once, when torch loads its OpenMP runtime. By default idle threads spin, which on a busy
# machine takes the core another thread or process needed (2-3x slower training; measured in nbs/49_bench.ipynb, "Threads
# on a busy machine"). Unless the user chose a policy, or torch is already imported, waiting threads sleep instead.
import os as _os, sys as _sys
if 'torch' not in _sys.modules: _os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
