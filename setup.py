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
    package_data={"ooniapi.probe": ["probe_data/*.json"]},
    install_requires=[
        "flask>=3.0,<4",
        "flasgger>=0.9.7,<0.10",
        "clickhouse-driver>=0.2.8,<0.3",
        "chdb>=3.0,<5",
        "lmdb>=1.4,<4",
        "boto3>=1.34,<2",
        "geoip2>=4.8,<6",
        "statsd>=4.0,<5",
        "gunicorn>=22,<28",
        "ujson>=5.9,<7",
        "pyyaml>=6.0,<7",
        "zstandard>=0.22,<1",
        "lz4>=4.3,<5",
        "pyahocorasick>=2.0,<3",
        "ahocorasick-rs>=1.0,<2",
        "hyperscan>=0.7,<1; platform_machine == 'x86_64'",
        "PyJWT>=2.8,<3",
        "python-dateutil>=2.8,<3",
        "pyarrow>=14,<27",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "moto[server]>=5.0,<6",
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
        ],
    },
)
