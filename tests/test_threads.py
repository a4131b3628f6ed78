"The library's OpenMP wait policy: PASSIVE unless the user chose one, and only when the library is imported before torch."
import os, subprocess, sys

def _policy(code, **env):
    e = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}; e.update(env)
    return subprocess.run([sys.executable, '-c', code + "; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                          capture_output=True, text=True, env=e, check=True).stdout.split()[-1]

def test_passive_by_default():
    assert _policy('import nae_nbdev') == 'PASSIVE'

def test_the_users_choice_is_kept():
    assert _policy('import nae_nbdev', OMP_WAIT_POLICY='ACTIVE') == 'ACTIVE'

def test_nothing_is_set_after_torch_is_loaded():
    "OpenMP has read its settings by then: setting the variable would only mislead."
    assert _policy('import torch, nae_nbdev') == 'None'
