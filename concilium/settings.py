"""Process-wide settings, read from the environment (prefix ``CONCILIUM_``).

Settings are what a deployment changes without touching team files: the default
model for roles that name none, where the ledger lives, and whether Redis is
used. Team YAML always wins over these for the things it states.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "local/smollm2"


class Settings(BaseSettings):
    """Environment configuration.

    Example:
        ``CONCILIUM_MODEL=ollama/llama3.1 concilium run team.yaml "task"``
    """

    model_config = SettingsConfigDict(env_prefix="CONCILIUM_", extra="ignore")

    model: str = Field(DEFAULT_MODEL, description="Model for roles whose YAML names none.")
    home: Path = Field(Path(".concilium"), description="Directory for the SQLite ledger.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default is SQLite under `home`."
    )
    redis_url: SecretStr | None = Field(None, description="Redis URL; none means SQL alone.")
    redis_prefix: str = Field("concilium:", description="Prefix of every Redis key we write.")
    record: bool = Field(True, description="Record runs and steps in the ledger by default.")
    checkpoint: bool = Field(
        True, description="Checkpoint runs (and journal their model calls) so a killed run "
        "can be resumed with `concilium runs resume RUN`."
    )
    keep_checkpoints: bool = Field(
        False, description="Keep a run's checkpoints and call journal after it ends ok "
        "(they are dropped by default: the ledger has every step)."
    )
    cache_ttl_s: float = Field(
        7 * 24 * 3600.0, description="Lifetime of a cached model reply in Redis (0: forever)."
    )
    cache_any_temperature: bool = Field(
        False, description="Also cache replies sampled at temperature > 0 (fixes the sample)."
    )
    scripts_dir: Path | None = Field(
        None, description="Where the scripted provider looks for `<name>.yaml` scripts."
    )
    request_timeout_s: float = Field(120.0, description="Default timeout of one model call.")
    litellm_callbacks: str = Field(
        "", description="litellm callbacks every model call is logged to, comma-separated "
        "(`langfuse`, `langsmith`, ...; each reads its own keys from the environment)."
    )

    def sqlalchemy_url(self) -> str:
        """The database URL in effect (SQLite file under ``home`` by default)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'concilium.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once; ``get_settings.cache_clear()`` re-reads."""
    return Settings()
