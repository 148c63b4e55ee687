"""Local git repositories standing for citizenlab/test-lists (upstream) and
ooni-bot/test-lists (the fork), built from the CitizenLab test lists in
../shared/data, or from small generated lists when that is absent."""
from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path

from tests.functional.testlists.fake_github import git

HEADER = "url,category_code,category_description,date_added,source,notes\n"
SHARED_LISTS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "test-lists"


def generated_lists(dest: Path) -> None:
    """A few small lists, shaped like upstream's (LF, quoted notes)."""
    lists = dest / "lists"
    lists.mkdir(parents=True)
    rows = {
        "it": [("http://www.torrentdownload.ws/", "FILE", "File-sharing", "2017-04-12", "",
                "Site reported to be blocked by AGCOM"),
               ("https://www.repubblica.it/", "NEWS", "News Media", "2017-04-12", "", "")],
        "de": [("https://www.spiegel.de/", "NEWS", "News Media", "2014-04-15", "", ""),
               ("https://www.bild.de/", "NEWS", "News Media", "2014-04-15", "", "notes, with comma")],
        "us": [("https://www.example.com/", "MISC", "Miscelaneous content", "2017-04-12", "", "")],
        "global": [("https://www.facebook.com/", "GRP", "Social Networking", "2014-04-15",
                    "", ""),
                   ("https://twitter.com/", "GRP", "Social Networking", "2014-04-15", "", "")],
    }
    for cc, rs in rows.items():
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerows(rs)
        (lists / f"{cc}.csv").write_text(HEADER + out.getvalue())


def build_remotes(base: Path) -> tuple[Path, Path, str]:
    """(upstream bare repo, fork bare repo, where the lists came from)."""
    seed = base / "seed"
    if SHARED_LISTS.is_dir():
        shutil.copytree(SHARED_LISTS, seed)
        source = str(SHARED_LISTS)
    else:
        generated_lists(seed)
        source = "generated lists (../shared/data/test-lists is absent)"
    git("init", "-q", "-b", "master", str(seed))
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "Initial lists", cwd=seed)
    upstream, fork = base / "upstream.git", base / "fork.git"
    git("clone", "-q", "--bare", str(seed), str(upstream))
    git("clone", "-q", "--bare", str(upstream), str(fork))
    shutil.rmtree(seed)
    return upstream, fork, source


def clone_remotes(template: tuple[Path, Path, str], dest: Path) -> tuple[Path, Path]:
    up, fork = dest / "upstream.git", dest / "fork.git"
    git("clone", "-q", "--bare", str(template[0]), str(up))
    git("clone", "-q", "--bare", str(template[1]), str(fork))
    return up, fork


def upstream_file(upstream: Path, path: str, ref: str = "master") -> str:
    return git("--git-dir", str(upstream), "show", f"{ref}:{path}") + "\n"


def commit_upstream(upstream: Path, path: str, text: str, message: str) -> None:
    """Another contributor's change landing upstream."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        git("clone", "-q", str(upstream), str(work))
        (work / path).write_text(text)
        git("commit", "-q", "-am", message, cwd=work)
        git("push", "-q", "origin", "master", cwd=work)


def rows_of(text: str) -> list[dict[str, str]]:
    keys = ("url", "category_code", "date_added", "source", "notes")
    return [{k: (r.get(k) or "") for k in keys} for r in csv.DictReader(io.StringIO(text))]
