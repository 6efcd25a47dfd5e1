import logging

from flask import Flask

app = Flask(__name__)
log = logging.getLogger(__name__)


@app.before_request
def add_request_logging():
    handler = logging.FileHandler("requests.log")
    log.addHandler(handler)  # expect: MP108


@app.route("/user/<name>")
def user(name):
    logger = logging.getLogger(f"user.{name}")  # expect: MP108
    logger.info("seen")
    app.logger.addFilter(lambda record: True)  # expect: MP108
    return name
