"""The shop in a browser: `create_app()` builds a Flask app (see `webshop_env.web.app`)."""

from webshop_env.web.app import (
    LOOPBACK,
    ActionError,
    ShopWeb,
    create_app,
    install_error_pages,
    install_security_headers,
    web_action,
)
from webshop_env.web.sessions import SessionStore

__all__ = ["LOOPBACK", "ActionError", "SessionStore", "ShopWeb", "create_app", "install_error_pages",
           "install_security_headers", "web_action"]
