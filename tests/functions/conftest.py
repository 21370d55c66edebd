from tests.backend.sensitive.conftest import demo

__all__ = ["demo"]
