"""JWT helpers of ooniapi.core.auth: probe credentials and session tokens."""
import datetime as dt

import jwt
import pytest

from ooni_common.config import Config

from ooniapi.core import auth
from ooniapi.core.errors import BadRequest, Unauthorized


@pytest.fixture
def kcfg(tmp_path):
    return Config({"DATA_DIR": str(tmp_path), "JWT_ENCRYPTION_KEY": "k" * 32})


def test_client_id_is_probe_login_jwt(kcfg):
    now = dt.datetime(2024, 1, 2, 3, 4, 5)
    cid = auth.probe_client_id(kcfg, now)
    claims = jwt.decode(cid, "k" * 32, algorithms=["HS256"], audience="probe_login")
    assert claims == {"iat": 1704164645, "aud": "probe_login"}


def test_login_with_client_id_gives_probe_token(kcfg):
    now = dt.datetime(2024, 1, 2, 3, 4, 5, 123)
    cid = auth.probe_client_id(kcfg, now)
    login = auth.probe_login(kcfg, cid, now)
    assert login.registration_time == 1704164645
    assert login.expire == dt.datetime(2024, 1, 9, 3, 4, 5)
    claims = auth.check_probe_token(kcfg, f"Bearer {login.token}")
    assert claims["aud"] == "probe_token"
    assert claims["registration_time"] == 1704164645
    assert "exp" not in claims


def test_legacy_username_is_accepted(kcfg):
    login = auth.probe_login(kcfg, "orchestrate-legacy-id")
    assert login.registration_time is None
    assert auth.check_probe_token(kcfg, "Bearer " + login.token)["registration_time"] is None


@pytest.mark.parametrize("username", [
    jwt.encode({"iat": 1, "aud": "probe_login"}, "other-key-" + "x" * 32, algorithm="HS256"),
    jwt.encode({"iat": 1, "aud": "user_auth"}, "k" * 32, algorithm="HS256"),
])
def test_login_with_forged_or_wrong_audience_jwt_is_401(kcfg, username):
    with pytest.raises(Unauthorized) as e:
        auth.probe_login(kcfg, username)
    assert e.value.message == "Invalid credentials"


def test_probe_token_check_errors(kcfg):
    with pytest.raises(Unauthorized, match="Invalid credentials"):
        auth.check_probe_token(kcfg, None)
    with pytest.raises(BadRequest, match="Invalid token format"):
        auth.check_probe_token(kcfg, "Token abc")
    forged = jwt.encode({"aud": "probe_token"}, "other-" + "y" * 32, algorithm="HS256")
    with pytest.raises(Unauthorized, match="Invalid JWT signature"):
        auth.check_probe_token(kcfg, "Bearer " + forged)
    client_id = auth.probe_client_id(kcfg)
    with pytest.raises(Unauthorized, match="Invalid credentials"):
        auth.check_probe_token(kcfg, "Bearer " + client_id)
    with pytest.raises(Unauthorized, match="Invalid credentials"):
        auth.check_probe_token(kcfg, "Bearer not.a.jwt")


def test_session_expiry_capped_by_login_time(kcfg):
    login = dt.datetime(2012, 1, 14)
    tok = auth.session_token(kcfg, "a" * 32, "admin", login_time=1326499200, now=login)
    c = jwt.decode(tok, "k" * 32, algorithms=["HS256"], audience="user_auth",
                   options={"verify_exp": False})
    assert c == {"nbf": 1326499200, "iat": 1326499200, "exp": 1326672000,
                 "aud": "user_auth", "account_id": "a" * 32,
                 "login_time": 1326499200, "role": "admin",
                 "iat_ms": 1326499200000}
    # refreshed on day 6: capped at login + 7 days, not now + 2
    later = auth.session_token(kcfg, "a" * 32, "admin", login_time=1326499200,
                               now=dt.datetime(2012, 1, 20))
    c2 = jwt.decode(later, "k" * 32, algorithms=["HS256"], audience="user_auth",
                    options={"verify_exp": False})
    assert c2["exp"] == 1326499200 + 7 * 86400


def test_expired_session_is_rejected(kcfg):
    tok = auth.session_token(kcfg, "a" * 32, "user", now=dt.datetime(2012, 1, 14))
    with pytest.raises(Unauthorized, match="Authentication required"):
        auth.decode_session(kcfg, tok)


def test_generated_key_is_kept_in_data_dir(tmp_path):
    c = Config({"DATA_DIR": str(tmp_path)})
    cid = auth.probe_client_id(c)
    assert auth.probe_login(c, cid).registration_time is not None
    assert (tmp_path / "secrets" / "jwt_encryption_key").exists()
