import logging

from flask import Flask, request

log = logging.getLogger(__name__)


def create_app():
    app = Flask(__name__)
    handler = logging.StreamHandler()
    app.logger.addHandler(handler)

    @app.route("/user/<name>")
    def user(name):
        log.info("seen user %s from %s", name, request.remote_addr)
        return name

    return app
