"""An Acme Edge connection in ``reconciler.yaml`` (``providers.acme``, ``connections.acme.<name>``).

The common settings (``base_url``, ``timeout``, ``concurrency``, retries, ``requests_per_second``)
come from :class:`reconciler.manifest.config.Connection`; Acme adds its token and the zone."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictStr

from reconciler.manifest.config import Connection
from reconciler.manifest.secrets import SecretRef

ZONE = r"^[a-z0-9][a-z0-9-]{0,62}$"


class AcmeConnection(Connection):
    api_token: SecretRef  # a reference (env:NAME, file:PATH), never the token itself
    zone: Annotated[StrictStr, Field(pattern=ZONE, description="the zone (site) whose cache rules this connection manages")]
