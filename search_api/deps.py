"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search_api.services.generations import SearchService
from search_api.settings import ApiSettings


def get_service(request: Request) -> SearchService:
    """The service created in the app's lifespan."""
    service: SearchService = request.app.state.service
    return service


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    settings: ApiSettings = request.app.state.settings
    return settings


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
