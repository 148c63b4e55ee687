"""Configuration: one TOML file plus environment overrides.

The file is named by ``$OONI_CONF`` (default ``/etc/ooni/backend.toml`` when it
exists, else no file). Keys are the upper-case names of api.md §17
(``MSMT_SPOOL_DIR``, ``CLICKHOUSE_URL``...); they may sit at the top level or
inside any table (``[api]``, ``[fastpath]``...), tables only group them for
people. Every key can be overridden by the environment variable ``OONI_<KEY>``
(the prefix avoids clashes with variables such as ``HOSTNAME``).

Components read typed values through ``Config.get_*`` with their own defaults,
so adding a key needs no change here. Defaults make a fresh checkout work in
standalone mode: data lives under ``$XDG_DATA_HOME/ooni-backend`` when that is
set, else ``./var`` in the current directory.
"""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CONF = "/etc/ooni/backend.toml"
ENV_PREFIX = "OONI_"


class ConfigError(Exception):
    """A configuration value is missing or malformed."""


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "ooni-backend"
    return Path.cwd() / "var"


def _flatten(doc: Mapping[str, Any], out: dict[str, Any]) -> None:
    for k, v in doc.items():
        if isinstance(v, dict):
            _flatten(v, out)
        else:
            out[k.upper()] = v


@dataclass
class Config:
    """Flat key -> value mapping with typed accessors."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None,
             overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "Config":
        values: dict[str, Any] = {}
        env = os.environ if environ is None else environ
        path = path or env.get("OONI_CONF")
        if path is None and os.path.exists(DEFAULT_CONF):
            path = DEFAULT_CONF
        if path:
            try:
                with open(path, "rb") as f:
                    _flatten(tomllib.load(f), values)
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"cannot read configuration file {path}: {e}") from e
        for k, v in env.items():
            if k.startswith(ENV_PREFIX) and k != "OONI_CONF":
                values[k[len(ENV_PREFIX):]] = v
        for k, v in (overrides or {}).items():
            if v is not None:
                values[k.upper()] = v
        return cls(values)

    def with_overrides(self, **kw: Any) -> "Config":
        vals = dict(self.values)
        for k, v in kw.items():
            if v is not None:
                vals[k.upper()] = v
        return Config(vals)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        v = self.values.get(key)
        return default if v is None or v == "" else v

    def get_str(self, key: str, default: str = "") -> str:
        return str(self.get(key, default))

    def get_int(self, key: str, default: int) -> int:
        v = self.get(key, default)
        try:
            return int(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {v!r}") from None

    def get_float(self, key: str, default: float) -> float:
        v = self.get(key, default)
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {v!r}") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.get(key, default)
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be a boolean, got {v!r}")

    def get_list(self, key: str, default: list[str] | None = None) -> list[str]:
        """A TOML list, or a string of items separated by commas or spaces."""
        v = self.get(key, None)
        if v is None:
            return list(default or [])
        if isinstance(v, (list, tuple)):
            return [str(x) for x in v]
        return [x for x in str(v).replace(",", " ").split() if x]

    # Paths shared by several components -------------------------------------

    @property
    def data_dir(self) -> Path:
        return Path(self.get("DATA_DIR", None) or default_data_dir()).resolve()

    @property
    def spool_dir(self) -> Path:
        return Path(self.get("MSMT_SPOOL_DIR", None) or self.data_dir / "spool")

    @property
    def clickhouse_url(self) -> str:
        return self.get_str("CLICKHOUSE_URL", f"chdb://{self.data_dir / 'db'}")

    @property
    def collector_id(self) -> str:
        return self.get_str("COLLECTOR_ID", "1")

    def secret(self, key: str) -> str:
        """A secret from the config, else one generated once and kept in the
        data directory (standalone), never in the repository."""
        v = self.get(key, None)
        if v:
            return str(v)
        d = self.data_dir / "secrets"
        p = d / key.lower()
        try:
            return p.read_text().strip()
        except FileNotFoundError:
            pass
        d.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            # link() fails if another process created it first: theirs wins.
            os.link(tmp, p)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return p.read_text().strip()
