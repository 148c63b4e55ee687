"""The Debian package leaves chdb out (setup.py extra "embedded"): asking
such an installation for the embedded database must give one clear line and
exit status 1, not an ImportError traceback. A child process hides chdb
(``sys.modules['chdb'] = None`` makes its import fail as if it were absent)."""
import subprocess
import sys

WITHOUT_CHDB = "import sys; sys.modules['chdb'] = None; sys.modules['chdb.session'] = None\n"


def _run(code: str, tmp_path):
    return subprocess.run([sys.executable, "-c", WITHOUT_CHDB + code], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def test_connect_names_the_missing_extra(tmp_path):
    p = _run(
        "from ooni_common.db import DatabaseError, connect\n"
        "try:\n"
        f"    connect('chdb://{tmp_path}/db')\n"
        "except DatabaseError as e:\n"
        "    print('DatabaseError:', e)\n", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "DatabaseError: the embedded database (chdb://) needs the chdb package" in p.stdout
    assert "ooni-backend[embedded]" in p.stdout


def test_standalone_run_exits_with_one_line(tmp_path):
    p = _run(
        "import sys\n"
        "from ooniapi.runtime.standalone import main\n"
        f"sys.exit(main(['run', '--data-dir', '{tmp_path}/var', '--port', '0']))\n", tmp_path)
    assert p.returncode == 1, (p.stdout, p.stderr)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("ooni-backend:")]
    assert len(errors) == 1, p.stderr
    assert "needs the chdb package" in errors[0]
    assert "Traceback" not in p.stderr
