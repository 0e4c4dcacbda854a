"""Settings of the realtime service (``REALTIME_*``)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RealtimeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REALTIME_", extra="ignore", frozen=True)

    port: int = 8004
