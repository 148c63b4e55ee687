"""One distribution for the whole OONI backend: API, fastpath, analysis jobs
and the small shared core. Each component keeps its own package directory so
that it can be packaged and deployed on its own (see debian/)."""
from setuptools import find_packages, setup

# Each top-level component directory holds one import package.
COMPONENTS = {"common": "ooni_common", "api": "ooniapi", "fastpath": "fastpath", "analysis": "analysis"}
packages, package_dir = [], {}
for top, pkg in COMPONENTS.items():
    package_dir[pkg] = f"{top}/{pkg}"
    packages.append(pkg)
    for sub in find_packages(f"{top}/{pkg}"):
        packages.append(f"{pkg}.{sub}")
        package_dir[f"{pkg}.{sub}"] = f"{top}/{pkg}/" + sub.replace(".", "/")

setup(
    name="ooni-backend",
    version="0.1.0",
    description="OONI backend: measurement collection, scoring and API",
    python_requires=">=3.11",
    packages=packages,
    package_dir=package_dir,
    package_data={"ooniapi": ["*/openapi.yml"], "ooniapi.probe": ["probe_data/*.json"]},
    install_requires=[
        "flask>=3.0,<4",
        "flasgger>=0.9.7,<0.10",
        "clickhouse-driver>=0.2.8,<0.3",
        "lmdb>=1.4,<4",
        "boto3>=1.34,<2",
        "geoip2>=4.8,<6",
        "statsd>=4.0,<5",
        # /metrics aggregated over gunicorn workers (multiprocess mode)
        "prometheus-client>=0.20,<1",
        # 26 and 27 linger up to 2 s on the worker's main thread at every
        # connection close (util.close_graceful), stalling all its clients.
        "gunicorn>=23,<26",
        "ujson>=5.9,<7",
        "pyyaml>=6.0,<7",
        "zstandard>=0.22,<1",
        "lz4>=4.3,<5",
        "pyahocorasick>=2.0,<3",
        "ahocorasick-rs>=1.0,<2",
        "hyperscan>=0.7,<1; platform_machine == 'x86_64'",
        "PyJWT>=2.8,<3",
        "python-dateutil>=2.8,<3",
        "ooniauth-py>=0.3.3,<0.4",
        "pyarrow>=14,<27",
    ],
    extras_require={
        # The embedded ClickHouse of `ooni-backend run` (about 900 MB
        # installed). Production talks to a ClickHouse server and the
        # Debian package leaves it out; ./manage run and test install it.
        "embedded": ["chdb>=3.0,<5"],
        "test": [
            "pytest>=8,<10",
            "moto[server]>=5.0,<6",
            "openapi-spec-validator>=0.7,<0.10",
            "feedparser>=6.0,<7",
            "paramiko>=3.4,<6",
            "pyflakes>=3,<5",
        ],
    },
    entry_points={
        "console_scripts": [
            "ooni-backend=ooniapi.runtime.standalone:main",
            "ooni-api=ooniapi.runtime.server:main",
            "fastpath=fastpath.cli:main",
            "analysis=analysis.cli:main",
            "ooni-api-uploader=analysis.uploader:main",
            "ooni-download-geoip=analysis.geoip_download:main",
            "ooni-db-backup=analysis.backup:main",
            "detector=analysis.detector.job:main",
            "rotation=analysis.rotation.job:main",
            "ooni-anoncred-keys=ooniapi.probe.anoncred:main",
        ],
    },
)
