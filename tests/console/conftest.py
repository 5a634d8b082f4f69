"""The console's tests start real edges as the API tests do."""

from tests.api.conftest import edge

__all__ = ["edge"]
