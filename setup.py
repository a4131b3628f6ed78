"Packaging for nae-nbdev, driven by settings.ini (nbdev 2 layout). Does not import pkg_resources."
from configparser import ConfigParser
import setuptools, shlex

assert setuptools.__version__ >= '36.2'
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

# license key -> (SPDX expression, trove classifier for setuptools < 77, which predates SPDX `license`)
licenses = {
    'apache2': ('Apache-2.0', 'OSI Approved :: Apache Software License'),
    'mit': ('MIT', 'OSI Approved :: MIT License'),
}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
py_versions = '3.9 3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
bench_requirements = shlex.split(cfg.get('bench_requirements', ''))   # the optional PyOD comparison (nbs/56_detector_bench)
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
spdx = tuple(int(v) for v in setuptools.__version__.split('.')[:2]) >= (77, 0)   # SPDX license field, no License classifier
min_python = cfg['min_python']
# Console scripts: one "name=module:func" per line or per space.
entry_points = {'console_scripts': cfg.get('console_scripts', '').split(),
                # nbdev finds the docs index (_modidx) through this entry point: it links names in the docs
                'nbdev': [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"]}

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    license_files=['LICENSE'],
    classifiers=[
        'Development Status :: ' + statuses[int(cfg['status']) - 1],   # settings.ini status = 3 -> '3 - Alpha'
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
      + (['License :: ' + lic[1]] if lic[1] and not spdx else []),
    url=cfg['git_url'],
    project_urls={'Documentation': cfg['doc_host'].rstrip('/') + cfg.get('doc_baseurl', ''), 'Source': cfg['git_url']},
    packages=setuptools.find_namespace_packages(include=['nae_nbdev', 'nae_nbdev.*'], exclude=['*__pycache__*']),   # records/: data
    include_package_data=True,
    package_data={'nae_nbdev': ['records/*.json', 'records/*/*']},   # the published CPU-scale records
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'bench': bench_requirements},
    dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points=entry_points,
    **setup_cfg)
