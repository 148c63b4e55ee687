from __future__ import annotations

import pytest

from ooniapi.core.auth import session_token
from tests.functional.testlists.fake_github import FakeGitHub
from tests.functional.testlists.support import build_remotes, clone_remotes

ALICE = "a1" * 16
BOB = "b2" * 16


@pytest.fixture(scope="session")
def remotes_template(tmp_path_factory):
    return build_remotes(tmp_path_factory.mktemp("testlists-remotes"))


@pytest.fixture
def remotes(remotes_template, tmp_path):
    d = tmp_path / "remotes"
    d.mkdir()
    return clone_remotes(remotes_template, d)


@pytest.fixture
def github(remotes):
    fake = FakeGitHub(*remotes)
    yield fake
    fake.stop()


@pytest.fixture
def cfg(cfg, remotes, github):
    upstream, fork = remotes
    return cfg.with_overrides(
        GITHUB_ORIGIN_URL=str(upstream), GITHUB_PUSH_URL=str(fork),
        GITHUB_API_URL=github.url, GITHUB_TOKEN="test-token",
        GITHUB_ORIGIN_REPO="citizenlab/test-lists", GITHUB_PUSH_REPO="ooni-bot/test-lists",
        TESTLISTS_FETCH_INTERVAL="0", GITHUB_RETRY_DELAY="0.01", GITHUB_TIMEOUT="5")


@pytest.fixture
def headers(cfg):
    def make(account: str = ALICE, role: str = "user") -> dict[str, str]:
        return {"Authorization": "Bearer " + session_token(cfg, account, role)}
    return make
