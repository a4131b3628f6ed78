#!/usr/bin/env python
"""Offline docs-site check: nbdev_proc_nbs, then smalldocs renders the `_quarto.yml` site.

Fails (exit 1) if any notebook has no HTML page, a page is empty, shows a raw error
(a Python traceback or a render failure), or links to a local file that does not exist.
With DOCS_BROWSER=1 each page is also loaded in headless Chromium; the DOM must carry the
page's title and content, and a screenshot of each page is saved in _proc/screens/.
The real deploy stays `nbdev_docs` (Quarto); this is only the offline check that the site builds.
"""
import os, re, sys, subprocess, shutil, html
from pathlib import Path

root = Path(__file__).resolve().parents[1]
nbs, proc = root/'nbs', root/'_proc'
site = proc/'_docs'
_tag = re.compile(r'<[^>]+>')
BAD = ['Traceback (most recent call last)', 'smalldocs error', 'could not render', 'failed to render']

def sh(cmd, **kw):
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, **kw)
    if r.returncode: print(r.stdout[-3000:], r.stderr[-3000:]); raise SystemExit(f"FAILED: {' '.join(cmd)}")
    return r

def main_text(page):
    s = page.read_text(errors='replace')
    m = re.search(r'<main[^>]*>(.*)</main>', s, re.S)
    return s, html.unescape(_tag.sub(' ', m.group(1) if m else ''))

def check_page(page):
    errs = []
    s, txt = main_text(page)
    if len(txt.split()) < 30: errs.append(f"{page.name}: page is (nearly) empty ({len(txt.split())} words)")
    for b in BAD:
        if b.lower() in txt.lower(): errs.append(f"{page.name}: page shows a raw error ({b!r})")
    for ref in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', s):
        if re.match(r'^(?:[a-z]+:|//|data:)', ref): continue
        if not (page.parent/ref).exists(): errs.append(f"{page.name}: broken local link {ref}")
    return errs

def browser_check(pages):
    chrome = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    if not chrome: return ["DOCS_BROWSER=1 but no chromium found (apt-get install chromium)"]
    errs, shots = [], proc/'screens'
    shots.mkdir(exist_ok=True)
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             f'--user-data-dir={proc/"chrome-profile"}', '--virtual-time-budget=3000']
    for p in pages:
        url = p.resolve().as_uri()
        r = subprocess.run([chrome, *flags, '--dump-dom', url], capture_output=True, text=True, timeout=120)
        dom = r.stdout
        title = re.search(r'<title>(.*?)</title>', p.read_text(errors='replace'), re.S)
        if r.returncode or '<main' not in dom: errs.append(f"{p.name}: chromium could not load the page (rc={r.returncode})")
        elif title and html.unescape(title.group(1)).split(' – ')[0] not in html.unescape(dom):
            errs.append(f"{p.name}: chromium's DOM lacks the page title")
        subprocess.run([chrome, *flags, '--window-size=1280,2000', f'--screenshot={shots/(p.stem+".png")}', url],
                       capture_output=True, timeout=120)
    print(f"chromium loaded {len(pages)} pages; screenshots in {shots}")
    return errs

if __name__ == '__main__':
    if proc.exists(): shutil.rmtree(proc)  # nbdev's mtime cache can keep stale pages: always build from scratch
    sh(['nbdev_proc_nbs'])
    sh(['smalldocs', 'render', str(proc)])
    notebooks = sorted(p for p in nbs.rglob('*.ipynb') if not any(x.startswith(('_', '.')) for x in p.relative_to(nbs).parts))
    errs, pages = [], []
    for nb in notebooks:
        page = site/nb.relative_to(nbs).with_suffix('.html')
        if not page.exists(): errs.append(f"{nb.name}: no HTML page was built"); continue
        pages.append(page); errs += check_page(page)
    if os.environ.get('DOCS_BROWSER') == '1': errs += browser_check(pages)
    for e in errs: print('DOCS ERROR:', e)
    print(f"docs: {len(pages)}/{len(notebooks)} notebook pages built, {len(errs)} problems")
    sys.exit(1 if errs else 0)
