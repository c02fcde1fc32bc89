"""``convscope serve``: an HTTP API (FastAPI) and a browser explorer for one trained model.

Needs the ``serve`` extra (fastapi, uvicorn, python-multipart).
"""

from .app import Settings, create_app
from .service import ModelService

__all__ = ["create_app", "Settings", "ModelService"]
