"""What the fault suite injects and what happened: each test module records its cases here, and at the
end of the module they are merged into nae_nbdev/records/fault_suite.json, which the reliability
section of nbs/33_fit_nae.ipynb reads (each case as it went the last time it ran)."""
import json, time, os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT/'nae_nbdev'/'records'/'fault_suite.json'

class FaultLog:
    "Cases of one test module: (fault kind, case, what happened)."
    def __init__(self, module:str): self.module, self.cases = module, []
    def add(self, fault:str, case:str, outcome:str): self.cases.append(dict(fault=fault, case=case, outcome=outcome))

    def write(self):
        "Update this module's section of the record with the cases of this run (a case run again replaces its old entry)."
        if not self.cases or os.environ.get('NAE_NO_FAULT_RECORD'): return
        try: rec = json.loads(RECORD.read_text())
        except (OSError, ValueError): rec = {}
        new = {c['case'] for c in self.cases}
        old = [c for c in rec.get(self.module, {}).get('cases', []) if c['case'] not in new]
        rec[self.module] = dict(run=time.strftime('%Y-%m-%d'), cases=old + self.cases)
        tmp = RECORD.with_suffix('.tmp')
        tmp.write_text(json.dumps(dict(sorted(rec.items())), indent=1) + '\n'); os.replace(tmp, RECORD)

def module_log(module:str):
    "A `FaultLog` and the autouse module fixture that writes it when the module's tests are done."
    log = FaultLog(module)
    @pytest.fixture(scope='module', autouse=True)
    def _write_fault_log():
        yield
        log.write()
    return log, _write_fault_log
