from flask import Flask

app = Flask(__name__)
app.config["DEBUG"] = True  # expect: MP110


@app.route("/")
def index():
    return "hello"


if __name__ == "__main__":
    app.run(debug=True)  # expect: MP110
